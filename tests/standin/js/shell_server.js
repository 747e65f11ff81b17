// What an operator reads about one member: serverStatus, dbStats, collection stats,
// create, dropIndexes, the duplicate-key error, and what the stand-in refuses.
const out = {};
const t = db.getSiblingDB("shellserver");
const status = db.serverStatus();
out.serverStatus = ["host", "version", "uptime", "connections", "repl", "opcounters"].filter(
  (k) => status[k] !== undefined,
);
out.replSetName = status.repl.setName;
out.currentConnections = status.connections.current;
out.create = t.createCollection("made").ok;
out.createAgain = (() => {
  try {
    t.createCollection("made");
    return "ok";
  } catch (e) {
    return e.code;
  }
})();
t.made.insertMany([{ k: "a" }, { k: "b" }], { writeConcern: { w: "majority" } });
t.made.createIndex({ k: 1 }, { unique: true, name: "k_unique" });
try {
  t.made.insertOne({ k: "a" });
  out.duplicate = "accepted";
} catch (e) {
  out.duplicate = { code: e.code, keyPattern: e.keyPattern, keyValue: e.keyValue, message: e.message };
}
const stats = t.stats();
out.dbStats = { objects: Number(stats.objects), collections: Number(stats.collections) };
const cstats = t.made.stats();
out.collStats = { count: Number(cstats.count), nindexes: Number(cstats.nindexes), ns: cstats.ns };
out.dropIndex = t.made.dropIndex("k_unique").ok;
out.dropMissing = (() => {
  try {
    t.made.dropIndex("k_unique");
    return "ok";
  } catch (e) {
    return e.code;
  }
})();
out.indexesLeft = t.made.getIndexes().map((ix) => ix.name);
print(JSON.stringify(out));
