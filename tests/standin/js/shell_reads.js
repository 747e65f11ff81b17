// Majority writes, then reads from a secondary the way an operator types them in mongosh:
// find past the first batch (getMore), aggregate, countDocuments, collections, indexes.
const out = {};
const t = db.getSiblingDB("shellreads");
const docs = [];
for (let i = 0; i < 450; i++) docs.push({ i: i, even: i % 2 === 0 });
out.inserted = Object.keys(
  t.items.insertMany(docs, { writeConcern: { w: "majority", wtimeout: 10000 } }).insertedIds,
).length;
out.index = t.items.createIndex({ i: 1 }, { unique: true });
db.getMongo().setReadPref("secondary");
out.readPref = db.getMongo().getReadPrefMode();
const cursor = t.items.find({}, { _id: 0, i: 1 }).sort({ i: 1 }).batchSize(100);
const seen = cursor.toArray();
out.found = seen.length;
out.ordered = seen.every((d, k) => d.i === k);
out.grouped = t.items
  .aggregate([{ $group: { _id: "$even", n: { $sum: 1 } } }, { $sort: { _id: 1 } }])
  .toArray();
out.counted = t.items.countDocuments({ even: true });
out.collections = t.getCollectionNames();
out.indexes = t.items.getIndexes().map((ix) => ix.name);
print(JSON.stringify(out));
