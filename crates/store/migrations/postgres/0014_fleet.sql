-- PostgreSQL twin of sqlite/0014_fleet.sql (TEXT compares by code point, BLOB is BYTEA).
-- The fleet: step attempts handed to remote workers (`rota worker`), the workers seen, the
-- servers sharing this store, and named leases (the scheduler's).

-- One row per attempt a server hands to a worker. `epoch` fences the lease: it grows at
-- each claim and each expiry, and a worker's heartbeat, log lines and result are accepted
-- only with the epoch of its claim while the row is `leased`. The attempt itself (program,
-- arguments, environment with secret values) is sealed with the servers' secret key, so
-- the database never holds it in the clear and any server can hand it out. A worker
-- confirms a claim (its first heartbeat) before it starts anything; a claim whose lease
-- expires unconfirmed (its answer never reached the worker) goes back to `pending`.
CREATE TABLE dispatches (
    run_id           TEXT COLLATE "C"    NOT NULL,
    step_id          TEXT COLLATE "C"    NOT NULL,
    attempt          BIGINT  NOT NULL,
    namespace        TEXT COLLATE "C"    NOT NULL,
    runs_on          TEXT COLLATE "C"    NOT NULL,
    nonce            BYTEA   NOT NULL,
    payload          BYTEA   NOT NULL,
    state            TEXT COLLATE "C"    NOT NULL,
    epoch            BIGINT  NOT NULL,
    worker_id        TEXT COLLATE "C",
    lease_expires_at BIGINT,
    cancel_requested BOOLEAN NOT NULL,
    result           TEXT COLLATE "C",
    created_at       BIGINT  NOT NULL,
    claimed_at       BIGINT,
    confirmed_at     BIGINT,
    finished_at      BIGINT,
    PRIMARY KEY (run_id, step_id, attempt)
);
CREATE INDEX dispatches_by_state ON dispatches (state, created_at);

-- Workers, as they last introduced themselves (each claim and heartbeat).
CREATE TABLE workers (
    id             TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    name           TEXT COLLATE "C"   NOT NULL,
    labels         TEXT COLLATE "C"   NOT NULL,
    slots          BIGINT NOT NULL,
    busy           BIGINT NOT NULL,
    started_at     BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL
);

-- Servers sharing this store, each renewing its row while it runs.
CREATE TABLE servers (
    id             TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    host           TEXT COLLATE "C"   NOT NULL,
    pid            BIGINT NOT NULL,
    listen         TEXT COLLATE "C"   NOT NULL,
    started_at     BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL
);

-- Named leases: one holder at a time until `expires_at` (e.g. `scheduler`).
CREATE TABLE leases (
    name       TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    holder     TEXT COLLATE "C"   NOT NULL,
    expires_at BIGINT NOT NULL,
    since      BIGINT NOT NULL
);
