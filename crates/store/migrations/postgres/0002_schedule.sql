-- The scheduler daemon's durable state (`rota serve`); see migrations/sqlite/0002_schedule.sql.

CREATE TABLE occurrences (
    namespace    TEXT COLLATE "C" NOT NULL,
    job_id       TEXT COLLATE "C" NOT NULL,
    trigger_key  TEXT COLLATE "C" NOT NULL,
    scheduled_at BIGINT NOT NULL,
    recorded_at  BIGINT NOT NULL,
    outcome      TEXT COLLATE "C" NOT NULL,
    run_id       TEXT COLLATE "C",
    reason       TEXT COLLATE "C",
    PRIMARY KEY (namespace, job_id, trigger_key, scheduled_at)
);
CREATE INDEX occurrences_by_job ON occurrences (namespace, job_id, scheduled_at DESC);

CREATE TABLE trigger_state (
    namespace       TEXT COLLATE "C" NOT NULL,
    job_id          TEXT COLLATE "C" NOT NULL,
    trigger_key     TEXT COLLATE "C" NOT NULL,
    origin          BIGINT NOT NULL,
    evaluated_until BIGINT NOT NULL,
    PRIMARY KEY (namespace, job_id, trigger_key)
);

CREATE TABLE schedule_state (
    namespace   TEXT COLLATE "C" NOT NULL,
    job_id      TEXT COLLATE "C" NOT NULL,
    paused      BOOLEAN NOT NULL,
    resume_from BIGINT,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (namespace, job_id)
);

CREATE TABLE job_load_errors (
    path       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    message    TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL
);
