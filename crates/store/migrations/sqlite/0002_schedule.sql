-- The scheduler daemon's durable state (`rota serve`).

-- Every occurrence of a schedule, whatever became of it: a run, or `skipped`/`missed` with the
-- reason. The primary key is the promise that an occurrence never runs twice, across crashes:
-- the occurrence and its queued run are inserted in one transaction before the run starts.
CREATE TABLE occurrences (
    namespace    TEXT   NOT NULL,
    job_id       TEXT   NOT NULL,
    trigger_key  TEXT   NOT NULL,
    scheduled_at BIGINT NOT NULL,
    recorded_at  BIGINT NOT NULL,
    outcome      TEXT   NOT NULL,
    run_id       TEXT,
    reason       TEXT,
    PRIMARY KEY (namespace, job_id, trigger_key, scheduled_at)
);
CREATE INDEX occurrences_by_job ON occurrences (namespace, job_id, scheduled_at DESC);

-- Per trigger: the instant up to which every occurrence has been decided, and the origin
-- of a start-anchored interval's grid. Catch-up after downtime starts from `evaluated_until`.
CREATE TABLE trigger_state (
    namespace       TEXT   NOT NULL,
    job_id          TEXT   NOT NULL,
    trigger_key     TEXT   NOT NULL,
    origin          BIGINT NOT NULL,
    evaluated_until BIGINT NOT NULL,
    PRIMARY KEY (namespace, job_id, trigger_key)
);

-- Per job: paused or not, and from when a resumed schedule runs again.
CREATE TABLE schedule_state (
    namespace   TEXT    NOT NULL,
    job_id      TEXT    NOT NULL,
    paused      BOOLEAN NOT NULL,
    resume_from BIGINT,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (namespace, job_id)
);

-- Job files the server could not load, by path; a fixed file removes its row.
CREATE TABLE job_load_errors (
    path       TEXT   NOT NULL PRIMARY KEY,
    message    TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

