// The Node.js driver as an application uses it: majority writes, a unique index and its
// duplicate-key error, reads from a secondary (find with getMore, aggregate, countDocuments),
// w:0, an unsatisfiable write concern, and a transaction. JSON on the last line.
const { MongoClient, ReadPreference } = require("mongodb");

async function main() {
  const out = {};
  const client = new MongoClient(process.env.URI, { serverSelectionTimeoutMS: 15000 });
  await client.connect();
  const db = client.db("drivercrud");
  const items = db.collection("items", { writeConcern: { w: "majority", wtimeoutMS: 10000 } });
  out.index = await items.createIndex({ host: 1 }, { unique: true, name: "host_unique" });
  const docs = Array.from({ length: 300 }, (_, i) => ({ host: "h" + i, i }));
  out.inserted = (await items.insertMany(docs)).insertedCount;
  try {
    await items.insertOne({ host: "h7" });
    out.duplicate = "accepted";
  } catch (e) {
    out.duplicate = { code: e.code, keyPattern: e.keyPattern, keyValue: e.keyValue, message: e.message };
  }
  const secondary = db.collection("items", { readPreference: ReadPreference.SECONDARY });
  out.found = (await secondary.find({}, { batchSize: 50 }).toArray()).length;
  const counted = await secondary.aggregate([{ $match: { i: { $lt: 100 } } }, { $count: "n" }]).toArray();
  out.aggregated = counted[0].n;
  out.counted = await secondary.countDocuments({ i: { $gte: 250 } });
  out.collections = (await db.listCollections().toArray()).map((c) => c.name);
  out.indexes = (await items.listIndexes().toArray()).map((ix) => ix.name).sort();

  await db.collection("items", { writeConcern: { w: 0 } }).insertOne({ host: "unacknowledged" });
  const until = Date.now() + 5000;
  out.unacknowledgedApplied = 0;
  while (Date.now() < until && out.unacknowledgedApplied === 0) {
    out.unacknowledgedApplied = await items.countDocuments({ host: "unacknowledged" });
  }

  const started = Date.now();
  try {
    const five = db.collection("items", { writeConcern: { w: 5, wtimeoutMS: 30000 } });
    await five.insertOne({ host: "w5" });
    out.w5 = "acknowledged";
  } catch (e) {
    out.w5 = { code: e.code, codeName: e.codeName || (e.result && e.result.writeConcernError && e.result.writeConcernError.codeName) };
  }
  out.w5Ms = Date.now() - started;

  const session = client.startSession();
  try {
    session.startTransaction();
    await items.insertOne({ host: "in-transaction" }, { session });
    await session.commitTransaction();
    out.transaction = "committed";
  } catch (e) {
    out.transaction = { code: e.code, message: e.message };
    await session.abortTransaction().catch(() => {});
  } finally {
    await session.endSession();
  }
  out.transactionDocs = await items.countDocuments({ host: "in-transaction" });
  await client.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
