-- A second cancel request while a run is still active forces it: its cleanup steps
-- (`when: always`), which a first cancel lets run, are stopped too.
ALTER TABLE runs ADD COLUMN cancel_forced_at BIGINT;
