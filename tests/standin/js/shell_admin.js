// The operator's procedure in mongosh, connected straight to the first member:
// initiate with no config, add the others (one as localhost:PORT), status, conf, tags,
// refused reconfigs, freeze, stepDown, remove. Prints what it saw as JSON on the last line.
const hosts = process.env.HOSTS.split(",");
const port = (addr) => addr.split(":").pop();
const out = {};

function code(fn) {
  try {
    const r = fn();
    return r && r.ok === 0 ? r.code : "ok";
  } catch (e) {
    return e.code === undefined ? String(e.message) : e.code;
  }
}
function waitFor(what, fn, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    try {
      if (fn()) return;
    } catch (e) {
      // a member between states may refuse for a moment
    }
    sleep(100);
  }
  throw new Error("timed out waiting for " + what);
}
// Access control and TLS, as mongod runs in production: the shell initiates through the
// localhost exception; once it is primary the test makes the users (init-replset's way) and
// the shell logs in as the administrator. Other members: the same login, over TLS.
const [user, pwd] = process.env.LOGIN.split(":");
function other(host) {
  const uri = "mongodb://" + process.env.LOGIN + "@" + host + "/?directConnection=true&";
  return new Mongo(uri + process.env.OPTIONS).getDB("admin");
}

out.initiate = rs.initiate().ok;
waitFor("a primary", () => db.hello().isWritablePrimary, 30);
waitFor("the administrator's login", () => db.getSiblingDB("admin").auth(user, pwd).ok === 1, 30);
out.singleMember = rs.conf().members.map((m) => m.host);
// mongod refuses a config mixing localhost references with host names, so the members are
// added in the first one's form: localhost:PORT where that is a loopback address.
const first = out.singleMember[0];
const loopback = /^(localhost|127\.0\.0\.1):/.test(first);
const named = (addr) => (loopback ? "localhost" : first.split(":")[0]) + ":" + port(addr);
out.added = [named(hosts[1]), loopback ? hosts[2] : named(hosts[2])];
out.add1 = rs.add(out.added[0]).ok;
out.add2 = rs.add(out.added[1]).ok;
waitFor(
  "three healthy members",
  () => rs.status().members.filter((m) => m.health === 1 && m.state <= 2).length === 3,
  30,
);
const status = rs.status();
out.statusNames = status.members.map((m) => m.name);
out.statusStates = status.members.map((m) => m.stateStr).sort();
const conf = rs.conf();
out.confVersion = conf.version;
out.confHosts = conf.members.map((m) => m.host);

conf.members.forEach((m, i) => (m.tags = { hub: "hub" + (i + 1) }));
conf.version += 1;
out.tagReconfig = rs.reconfig(conf).ok;
out.tags = rs.conf().members.map((m) => m.tags.hub);
out.sameVersion = code(() => db.adminCommand({ replSetReconfig: rs.conf() }));
const twoVoters = rs.conf();
twoVoters.version += 1;
twoVoters.members = twoVoters.members.slice(0, 1);
out.removeTwoVoters = code(() => db.adminCommand({ replSetReconfig: twoVoters }));
const unknownHost = rs.conf();
unknownHost.version += 1;
unknownHost.members.push({ _id: 9, host: "127.0.0.1:1", priority: 0, votes: 0 });
out.unknownHost = code(() => db.adminCommand({ replSetReconfig: unknownHost, maxTimeMS: 20000 }));

const secondary = other(hosts[2]);
out.stepDownOnSecondary = code(() => secondary.runCommand({ replSetStepDown: 60 }));
out.freezeSecondary = code(() => secondary.runCommand({ replSetFreeze: 30 }));
out.freezePrimary = code(() => db.adminCommand({ replSetFreeze: 30 }));
out.unfreeze = code(() => secondary.runCommand({ replSetFreeze: 0 }));

const info = rs.printSecondaryReplicationInfo();
out.replicationInfo = Object.keys(info.value || info).sort();

out.stepDown = code(() => rs.stepDown(20, 10));
waitFor("a new primary", () => {
  const h = db.hello();
  return h.primary && h.primary !== hosts[0] && !h.isWritablePrimary;
}, 30);
const hello = db.hello();
out.newPrimary = hello.primary;
out.topologyVersion = Object.keys(hello.topologyVersion || {}).sort();

const newPrimary = other(hello.primary);
const cfg = newPrimary.runCommand({ replSetGetConfig: 1 }).config;
cfg.version += 1;
cfg.members = cfg.members.filter((m) => m.host !== out.added[1]);
out.remove = newPrimary.runCommand({ replSetReconfig: cfg }).ok;
out.afterRemove = newPrimary.runCommand({ replSetGetConfig: 1 }).config.members.map((m) => m.host);
out.removedSays = code(() => other(hosts[2]).runCommand({ replSetGetStatus: 1 }));
print(JSON.stringify(out));
