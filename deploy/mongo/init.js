// The one-shot `mongo-init` service of docker-compose.yml runs this with mongosh against the
// `mongo` service (mongod --replSet rs0 --keyFile …, so access control is on). It
//   1. logs in as the root account the image created at the first boot
//      (MONGO_INITDB_ROOT_USERNAME, password from the Docker secret mongo_root_password),
//   2. makes that mongod a single-node replica set and waits until it is a writable primary,
//   3. creates or updates one account per service, each with only the roles it needs:
//        gateway    readWrite on the duet database (accounts, keys, friends, sessions, history)
//        persister  readWrite on the duet database (writes messages, creates its indexes)
//        ops        read on the duet database (duet-admin audit verify)
//      Each account's user, password and database come from the service's own URL, the
//      Docker secret the service reads (DUET_MONGO_URL_FILE), so they are written down once
//      (python deploy/make_secrets.py makes them).
// Safe to run any number of times: a set already initiated is left as it is, and an
// existing account gets the password and roles of its URL (so rotating one is: new URL
// file, `docker compose up -d mongo-init`, then restart that service).
//
// The member is named "mongo:27017", the service's name on the compose network: clients
// connecting with ?replicaSet=rs0 learn that name from the set and must be able to resolve
// it. (From the host, connect with ?directConnection=true instead.)
//
// Why a replica set with one member: the services get change streams, retryable writes and
// transactions if they ever need them, and going to three members later is `rs.add()` with
// no change of the connection string's shape (see docs/operations.md).

const fs = require("fs");

const SET = "rs0";
// MONGO_RS_MEMBER overrides it (a test against a mongod on another address);
// MONGO_RS_MEMBERS lists every member, comma-separated (deploy/compose.cluster.yml).
const MEMBERS = (process.env.MONGO_RS_MEMBERS || process.env.MONGO_RS_MEMBER || "mongo:27017")
  .split(",").map((m) => m.trim()).filter((m) => m);
const MEMBER = MEMBERS.join(",");
const SECRETS = process.env.SECRETS_DIR || "/run/secrets";
const ROOT_USER = process.env.MONGO_ROOT_USER || "root";
// Service -> the roles it gets on the database named in its URL.
const ROLES = { gateway: ["readWrite"], persister: ["readWrite"], ops: ["read"] };

function secret(name) {
  return fs.readFileSync(`${SECRETS}/${name}`, "utf8").trim();
}

const admin = db.getSiblingDB("admin");
if (!admin.auth(ROOT_USER, secret("mongo_root_password"))) {
  print(`mongo-init: cannot log in as ${ROOT_USER}`);
  quit(1);
}

function initiated() {
  try {
    rs.status();
    return true;
  } catch (e) {
    if (e.codeName === "NotYetInitialized") return false;
    throw e;
  }
}

if (initiated()) {
  print(`replica set ${SET}: already initiated`);
} else {
  try {
    rs.initiate({ _id: SET, members: MEMBERS.map((host, i) => ({ _id: i, host })) });
    print(`replica set ${SET}: initiated with ${MEMBER}`);
  } catch (e) {
    // Another run got there first between the check and here.
    if (e.codeName !== "AlreadyInitialized") throw e;
    print(`replica set ${SET}: already initiated`);
  }
}

// The services connect as soon as this job has exited 0: make sure there is a primary.
const deadline = Date.now() + 60 * 1000;
while (!db.hello().isWritablePrimary) {
  if (Date.now() > deadline) {
    print(`replica set ${SET}: no writable primary after 60 s`);
    quit(1);
  }
  sleep(500);
}
print(`replica set ${SET}: ${MEMBER} is primary`);

// mongodb://USER:PASSWORD@host:port/DATABASE?... (make_secrets.py writes no %-escapes).
const URL_SHAPE = /^mongodb:\/\/([A-Za-z0-9._-]+):([A-Za-z0-9._~-]{16,128})@[^/]+\/([A-Za-z0-9_-]+)(\?|$)/;
for (const [service, roleNames] of Object.entries(ROLES)) {
  const match = URL_SHAPE.exec(secret(`${service}_mongo_url`));
  if (match === null) {
    print(`mongo-init: ${service}_mongo_url is not mongodb://USER:PASSWORD@HOST/DATABASE?…`);
    quit(1);
  }
  const [, user, pwd, database] = match;
  const roles = roleNames.map((role) => ({ role, db: database }));
  if (admin.getUser(user) === null) {
    admin.createUser({ user, pwd, roles });
    print(`mongo-init: account ${user} created (${roleNames.join(", ")} on ${database})`);
  } else {
    admin.updateUser(user, { pwd, roles });
    print(`mongo-init: account ${user} updated (${roleNames.join(", ")} on ${database})`);
  }
}
