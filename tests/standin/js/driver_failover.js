// Majority writes with retryable writes, without pause, while the test breaks the primary
// (kills or isolates it) and writes the moment it did so (ms since the epoch) to
// $SIGNAL_FILE. Prints READY after its first writes, then JSON: every acknowledged write
// with the member that acknowledged it, and the time from the break to the first write
// acknowledged by another member, and to the driver's topology naming another primary.
// With IDLE=1 it stops writing after READY: only its monitors can notice the change.
const fs = require("fs");
const { MongoClient } = require("mongodb");

const AFTER_BREAK = 20; // writes on the new primary before stopping
const LIMIT_MS = 60000;

async function main() {
  const client = new MongoClient(process.env.URI, {
    retryWrites: true,
    serverSelectionTimeoutMS: 30000,
    monitorCommands: true,
  });
  let lastAddress = null;
  let noticed = null; // [address, ms since the epoch] of the last primary the driver saw
  client.on("serverDescriptionChanged", (ev) => {
    const type = ev.newDescription.type;
    if (type === "RSPrimary" && (!noticed || noticed[0] !== ev.address)) {
      noticed = [ev.address, Date.now()];
    }
  });
  const idle = process.env.IDLE === "1";
  client.on("commandSucceeded", (ev) => {
    if (ev.commandName === "insert") lastAddress = ev.address;
  });
  await client.connect();
  const coll = client.db("failover").collection("writes", { writeConcern: { w: "majority" } });
  const writes = [];
  const errors = [];
  let brokeAt = null;
  let ready = false;
  const deadline = Date.now() + LIMIT_MS;
  for (let seq = 0; Date.now() < deadline; seq++) {
    if (brokeAt === null && fs.existsSync(process.env.SIGNAL_FILE)) {
      brokeAt = Number(fs.readFileSync(process.env.SIGNAL_FILE, "utf8"));
    }
    if (idle && ready) {
      if (brokeAt !== null && noticed && noticed[0] !== writes[0].by) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
      continue;
    }
    try {
      lastAddress = null;
      await coll.insertOne({ seq });
      writes.push({ seq, at: Date.now(), by: lastAddress });
    } catch (e) {
      errors.push({ seq, code: e.code, message: e.message });
    }
    if (!ready && writes.length >= 5) {
      ready = true;
      console.log("READY " + writes[0].by);
    }
    if (brokeAt !== null) {
      const before = writes[0].by;
      const moved = writes.filter((w) => w.at > brokeAt && w.by !== before);
      if (moved.length >= AFTER_BREAK) break;
    }
  }
  const before = writes[0].by;
  const first = writes.find((w) => brokeAt !== null && w.at > brokeAt && w.by !== before);
  await client.close();
  console.log(
    JSON.stringify({
      acked: writes.map((w) => w.seq),
      errors,
      brokeAt,
      primaryBefore: before,
      primaryAfter: first ? first.by : null,
      firstWriteAfterBreakMs: first ? first.at - brokeAt : null,
      noticedAfterBreakMs: noticed && noticed[0] !== before ? noticed[1] - brokeAt : null,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
