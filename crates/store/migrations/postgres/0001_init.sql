-- Rota's schema, PostgreSQL flavour: migrations/sqlite/0001_init.sql table for table, with
-- the same numbers and names, so one store API runs on either.
-- Ids are TEXT, timestamps are BIGINT microseconds since the Unix epoch (UTC), JSON is TEXT
-- holding a JSON document, booleans are BOOLEAN. Every TEXT column compares and sorts by code
-- point (COLLATE "C"), as SQLite compares text, whatever the database's default collation:
-- listings, keyset cursors and id-prefix ranges rely on that order.
-- SQLite's AUTOINCREMENT columns are identity columns here.

CREATE TABLE job_revisions (
    namespace   TEXT COLLATE "C" NOT NULL,
    job_id      TEXT COLLATE "C" NOT NULL,
    revision    BIGINT NOT NULL,
    hash        TEXT COLLATE "C" NOT NULL,
    source      TEXT COLLATE "C" NOT NULL,
    source_path TEXT COLLATE "C",
    definition  TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, job_id, revision)
);

CREATE TABLE runs (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace           TEXT COLLATE "C" NOT NULL,
    job_id              TEXT COLLATE "C" NOT NULL,
    job_revision        BIGINT  NOT NULL,
    status              TEXT COLLATE "C" NOT NULL,
    reason              TEXT COLLATE "C",
    params              TEXT COLLATE "C" NOT NULL,
    dry_run             BOOLEAN NOT NULL,
    triggered_by        TEXT COLLATE "C" NOT NULL,
    scheduled_at        BIGINT,
    created_at          BIGINT  NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    owner_host          TEXT COLLATE "C" NOT NULL,
    owner_pid           BIGINT  NOT NULL,
    owner_start_token   TEXT COLLATE "C" NOT NULL,
    cancel_requested_at BIGINT,
    cancel_requested_by TEXT COLLATE "C",
    FOREIGN KEY (namespace, job_id, job_revision)
        REFERENCES job_revisions (namespace, job_id, revision)
);
CREATE INDEX runs_by_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_by_namespace ON runs (namespace, created_at DESC, id DESC);
CREATE INDEX runs_by_job ON runs (namespace, job_id, created_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC, id DESC);

CREATE TABLE step_runs (
    run_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT COLLATE "C" NOT NULL,
    position    BIGINT NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    attempt     BIGINT NOT NULL,
    exit_code   BIGINT,
    reason      TEXT COLLATE "C",
    outputs     TEXT COLLATE "C" NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    pgid        BIGINT,
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE step_attempts (
    run_id      TEXT COLLATE "C" NOT NULL,
    step_id     TEXT COLLATE "C" NOT NULL,
    attempt     BIGINT NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    exit_code   BIGINT,
    reason      TEXT COLLATE "C",
    outputs     TEXT COLLATE "C" NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    pgid        BIGINT,
    PRIMARY KEY (run_id, step_id, attempt),
    FOREIGN KEY (run_id, step_id) REFERENCES step_runs (run_id, step_id) ON DELETE CASCADE
);

-- `seq` only grows (writers are serialized, so it is also committed in order).
CREATE TABLE logs (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id TEXT COLLATE "C" NOT NULL,
    attempt BIGINT NOT NULL,
    ts      BIGINT NOT NULL,
    stream  TEXT COLLATE "C" NOT NULL,
    text    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX logs_by_run ON logs (run_id, seq);
CREATE INDEX logs_by_step ON logs (run_id, step_id, seq);

CREATE TABLE events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT COLLATE "C" NOT NULL,
    run_id  TEXT COLLATE "C",
    step_id TEXT COLLATE "C",
    data    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, id);
