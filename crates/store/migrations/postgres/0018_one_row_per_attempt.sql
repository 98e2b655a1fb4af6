-- One row per step attempt, not two (twin of sqlite/0018_one_row_per_attempt.sql).
-- `step_runs` holds each step's current attempt; `step_attempts` now holds only the attempts
-- a step no longer describes (earlier ones, and the current one as it ended if the step was
-- then skipped). See crates/store/src/attempts.rs.

-- The step's row keeps its attempt's process group (it was cleared at the attempt's end).
UPDATE step_runs SET pgid = a.pgid
FROM step_attempts a
WHERE a.run_id = step_runs.run_id AND a.step_id = step_runs.step_id
  AND a.attempt = step_runs.attempt AND step_runs.attempt >= 1 AND step_runs.pgid IS NULL;

-- Only the attempts the step's row does not hold as they are stay.
DELETE FROM step_attempts a
USING step_runs s
WHERE s.run_id = a.run_id AND s.step_id = a.step_id AND s.attempt = a.attempt
  AND s.status = a.status AND s.exit_code IS NOT DISTINCT FROM a.exit_code
  AND s.reason IS NOT DISTINCT FROM a.reason AND s.outputs = a.outputs
  AND s.started_at IS NOT DISTINCT FROM a.started_at
  AND s.finished_at IS NOT DISTINCT FROM a.finished_at
  AND s.pgid IS NOT DISTINCT FROM a.pgid;

-- The event feed keeps a window of recent events (`rota serve --event-feed-keep`, 24 hours
-- by default); the runs and step tables keep the state. `pruned_through` is the last event
-- id dropped by age, so a reader whose cursor is older is told, not silently skipped ahead.
CREATE TABLE event_feed (
    one            INTEGER PRIMARY KEY CHECK (one = 1),
    pruned_through BIGINT  NOT NULL
);
