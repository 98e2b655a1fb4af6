-- Change counters, so a server follows what other processes change without reading it all
-- on every poll: each counter grows by one in every transaction that changes what it
-- counts, and a poll reads one row of it. A writer's update of the counter row holds that
-- row until it commits, so the values are committed in order and a reader that saw value N
-- sees every change numbered N or less.
CREATE TABLE change_counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
-- `jobs`: job revisions saved and jobs deleted; `schedule_state`: pauses and resumes.
INSERT INTO change_counters (name, value) VALUES ('jobs', 0);
INSERT INTO change_counters (name, value) VALUES ('schedule_state', 0);

-- The `jobs` counter's value in the transaction that wrote the row (NULL: written before
-- this migration, which a server's first full read covers): "which jobs changed since N"
-- is an index range.
ALTER TABLE job_revisions ADD COLUMN change_seq BIGINT;
ALTER TABLE deleted_jobs ADD COLUMN change_seq BIGINT;
CREATE INDEX job_revisions_by_change ON job_revisions (change_seq);
CREATE INDEX deleted_jobs_by_change ON deleted_jobs (change_seq);
