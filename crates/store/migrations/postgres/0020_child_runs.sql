-- PostgreSQL twin of sqlite/0020_child_runs.sql.
-- A run started by a `job:` step of another run names that run and step. NULL for every
-- other run. The index serves "the children of a run" (a step's child run, the unfinished
-- child a resumed attempt adopts).
ALTER TABLE runs ADD COLUMN parent_run_id TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN parent_step_id TEXT COLLATE "C";
CREATE INDEX runs_by_parent ON runs (parent_run_id);
