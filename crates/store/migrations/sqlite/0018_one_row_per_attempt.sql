-- One row per step attempt, not two (twin of postgres/0018_one_row_per_attempt.sql).
-- `step_runs` holds each step's current attempt; `step_attempts` now holds only the attempts
-- a step no longer describes (earlier ones, and the current one as it ended if the step was
-- then skipped). See crates/store/src/attempts.rs.

-- The step's row keeps its attempt's process group (it was cleared at the attempt's end).
UPDATE step_runs SET pgid = (
    SELECT a.pgid FROM step_attempts a
    WHERE a.run_id = step_runs.run_id AND a.step_id = step_runs.step_id
      AND a.attempt = step_runs.attempt)
WHERE attempt >= 1 AND pgid IS NULL;

-- Both tables become WITHOUT ROWID: keyed by (run_id, step_id[, attempt]), a rowid table
-- also keeps an index repeating that key for every row.
CREATE TABLE step_runs_new (
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
) WITHOUT ROWID;
INSERT INTO step_runs_new
    SELECT run_id, step_id, position, status, attempt, exit_code, reason, outputs,
           started_at, finished_at, pgid
    FROM step_runs;

CREATE TABLE step_attempts_new (
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
    FOREIGN KEY (run_id, step_id) REFERENCES step_runs_new (run_id, step_id) ON DELETE CASCADE
) WITHOUT ROWID;
-- Only the attempts the step's row does not hold as they are.
INSERT INTO step_attempts_new
    SELECT a.run_id, a.step_id, a.attempt, a.status, a.exit_code, a.reason, a.outputs,
           a.started_at, a.finished_at, a.pgid
    FROM step_attempts a
    WHERE NOT EXISTS (
        SELECT 1 FROM step_runs s
        WHERE s.run_id = a.run_id AND s.step_id = a.step_id AND s.attempt = a.attempt
          AND s.status = a.status AND s.exit_code IS a.exit_code AND s.reason IS a.reason
          AND s.outputs = a.outputs AND s.started_at IS a.started_at
          AND s.finished_at IS a.finished_at AND s.pgid IS a.pgid);

-- The child first, so dropping the old step_runs cascades into nothing.
DROP TABLE step_attempts;
DROP TABLE step_runs;
-- Renaming the parent also renames it in step_attempts_new's foreign key.
ALTER TABLE step_runs_new RENAME TO step_runs;
ALTER TABLE step_attempts_new RENAME TO step_attempts;

-- The event feed keeps a window of recent events (`rota serve --event-feed-keep`, 24 hours
-- by default); the runs and step tables keep the state. `pruned_through` is the last event
-- id dropped by age, so a reader whose cursor is older is told, not silently skipped ahead.
CREATE TABLE event_feed (
    one            INTEGER PRIMARY KEY CHECK (one = 1),
    pruned_through BIGINT  NOT NULL
);
