-- Retries of runs and deleted jobs; see migrations/sqlite/0006_retry_delete.sql.

ALTER TABLE runs ADD COLUMN retry_of TEXT COLLATE "C";

CREATE INDEX runs_by_namespace_status ON runs (namespace, status);

CREATE TABLE deleted_jobs (
    namespace  TEXT COLLATE "C" NOT NULL,
    job_id     TEXT COLLATE "C" NOT NULL,
    revision   BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL,
    deleted_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (namespace, job_id)
);
