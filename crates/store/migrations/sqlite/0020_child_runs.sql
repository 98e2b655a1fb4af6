-- A run started by a `job:` step of another run names that run and step (twin of
-- postgres/0020_child_runs.sql). NULL for every other run. The index serves "the children
-- of a run" (a step's child run, the unfinished child a resumed attempt adopts).
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_step_id TEXT;
CREATE INDEX runs_by_parent ON runs (parent_run_id);
