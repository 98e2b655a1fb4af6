-- A second cancel request forces a run; see migrations/sqlite/0007_cancel_force.sql.
ALTER TABLE runs ADD COLUMN cancel_forced_at BIGINT;
