// The Node.js driver logs in with SCRAM-SHA-256 over TLS (URI), writes as the operator and
// reads the set's status; BAD_URI's wrong password is refused. JSON on the last line.
const { MongoClient } = require("mongodb");

async function main() {
  const out = {};
  const client = new MongoClient(process.env.URI, { serverSelectionTimeoutMS: 15000 });
  await client.connect();
  const status = await client.db("admin").command({ connectionStatus: 1 });
  out.users = status.authInfo.authenticatedUsers.map((u) => u.user);
  const probe = client.db("cfreport").collection("probe");
  out.inserted = (await probe.insertOne({ by: "node" })).acknowledged;
  out.set = (await client.db("admin").command({ replSetGetStatus: 1 })).set;
  await client.close();
  const bad = new MongoClient(process.env.BAD_URI, { serverSelectionTimeoutMS: 5000 });
  try {
    await bad.connect();
    await bad.db("cfreport").collection("probe").findOne();
    out.badPassword = "accepted";
  } catch (e) {
    out.badPassword = e.code;
  } finally {
    await bad.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
