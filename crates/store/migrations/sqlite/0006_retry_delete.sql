-- Retries of runs and deleted jobs.

-- The run a retry repeats (NULL for every other run). A retry is a new run of the same job
-- revision; the steps it does not rerun are copied from this run.
ALTER TABLE runs ADD COLUMN retry_of TEXT;

-- `/metrics` counts runs by status per namespace and `active_runs` filters on status; with
-- the namespace first, one namespace's queued or running runs are an index range.
CREATE INDEX runs_by_namespace_status ON runs (namespace, status);

-- Jobs deleted through the API. Their revisions and runs stay (they are history); a job is
-- deleted while it has a row here whose `revision` is its latest one, so saving a new
-- revision revives it without touching this table.
CREATE TABLE deleted_jobs (
    namespace  TEXT   NOT NULL,
    job_id     TEXT   NOT NULL,
    revision   BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL,
    deleted_by TEXT   NOT NULL,
    PRIMARY KEY (namespace, job_id)
);
