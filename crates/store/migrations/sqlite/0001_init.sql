-- Rota's schema, SQLite flavour.
-- Portable on purpose, so a PostgreSQL flavour can mirror it table for table:
-- ids are TEXT, timestamps are BIGINT microseconds since the Unix epoch (UTC),
-- JSON is TEXT holding a JSON document, booleans are BOOLEAN.

-- A revision is the exact source text of a job file plus the job's normalized definition.
CREATE TABLE job_revisions (
    namespace   TEXT   NOT NULL,
    job_id      TEXT   NOT NULL,
    revision    BIGINT NOT NULL,
    hash        TEXT   NOT NULL,
    source      TEXT   NOT NULL,
    source_path TEXT,
    definition  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, job_id, revision)
);

CREATE TABLE runs (
    id                  TEXT    NOT NULL PRIMARY KEY,
    namespace           TEXT    NOT NULL,
    job_id              TEXT    NOT NULL,
    job_revision        BIGINT  NOT NULL,
    status              TEXT    NOT NULL,
    reason              TEXT,
    params              TEXT    NOT NULL,
    dry_run             BOOLEAN NOT NULL,
    triggered_by        TEXT    NOT NULL,
    scheduled_at        BIGINT,
    created_at          BIGINT  NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    owner_host          TEXT    NOT NULL,
    owner_pid           BIGINT  NOT NULL,
    owner_start_token   TEXT    NOT NULL,
    cancel_requested_at BIGINT,
    cancel_requested_by TEXT,
    FOREIGN KEY (namespace, job_id, job_revision)
        REFERENCES job_revisions (namespace, job_id, revision)
);
-- `list_runs` is newest first, optionally by namespace, job or status, with a
-- (created_at, id) cursor; `active_runs` looks up by status.
CREATE INDEX runs_by_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_by_namespace ON runs (namespace, created_at DESC, id DESC);
CREATE INDEX runs_by_job ON runs (namespace, job_id, created_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC, id DESC);

-- The latest state of each step of a run (one row per step, created with the run).
CREATE TABLE step_runs (
    run_id      TEXT   NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    status      TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    exit_code   BIGINT,
    reason      TEXT,
    outputs     TEXT   NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    pgid        BIGINT,
    PRIMARY KEY (run_id, step_id)
);

-- Every attempt of every step.
CREATE TABLE step_attempts (
    run_id      TEXT   NOT NULL,
    step_id     TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    status      TEXT   NOT NULL,
    exit_code   BIGINT,
    reason      TEXT,
    outputs     TEXT   NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    pgid        BIGINT,
    PRIMARY KEY (run_id, step_id, attempt),
    FOREIGN KEY (run_id, step_id) REFERENCES step_runs (run_id, step_id) ON DELETE CASCADE
);

-- Captured output lines. `seq` only grows, so it orders a run's lines and is a cursor.
CREATE TABLE logs (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id TEXT    NOT NULL,
    attempt BIGINT  NOT NULL,
    ts      BIGINT  NOT NULL,
    stream  TEXT    NOT NULL,
    text    TEXT    NOT NULL
);
CREATE INDEX logs_by_run ON logs (run_id, seq);
CREATE INDEX logs_by_step ON logs (run_id, step_id, seq);

-- The append-only log of state changes. It has no foreign key: it outlives what it describes.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT  NOT NULL,
    kind    TEXT    NOT NULL,
    run_id  TEXT,
    step_id TEXT,
    data    TEXT    NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, id);
