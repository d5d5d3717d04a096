// The one-shot `mongo-init` service of docker-compose.yml runs this with mongosh against the
// `mongo` service: it makes that mongod (started with --replSet rs0) a single-node replica
// set, then waits until it is a writable primary. Safe to run any number of times: a set
// that is already initiated is left as it is.
//
// The member is named "mongo:27017", the service's name on the compose network: clients
// connecting with ?replicaSet=rs0 learn that name from the set and must be able to resolve
// it. (From the host, connect with ?directConnection=true instead.)
//
// Why a replica set with one member: the services get change streams, retryable writes and
// transactions if they ever need them, and going to three members later is `rs.add()` with
// no change of the connection string's shape (see docs/operations.md).

const SET = "rs0";
// MONGO_RS_MEMBER overrides it (a test against a mongod on another address).
const MEMBER = process.env.MONGO_RS_MEMBER || "mongo:27017";

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
    rs.initiate({ _id: SET, members: [{ _id: 0, host: MEMBER }] });
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
