// mongosh logged in (SCRAM-SHA-256 over TLS, from the URI) as the reader: it reads cfreport,
// and mongod's code comes back for a write and for replica-set status. JSON on the last line.
const out = {};
const admin = db.getSiblingDB("admin");
out.users = admin.runCommand({ connectionStatus: 1 }).authInfo.authenticatedUsers.map((u) => u.user);
const probe = db.getSiblingDB("cfreport").probe;
out.found = probe.find({}, { _id: 0 }).toArray();
try {
  probe.insertOne({ by: "mongosh" });
  out.insert = "accepted";
} catch (e) {
  out.insert = e.code;
}
try {
  rs.status();
  out.status = "ok";
} catch (e) {
  out.status = e.code;
}
print(JSON.stringify(out));
