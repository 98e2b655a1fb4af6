-- A run started with its `confirm:` steps confirmed beforehand (`rota run --yes`, the API's
-- `confirm`), by whom (twin of postgres/0023_confirmed_runs.sql): whoever executes the run
-- reads it, so a server's run is confirmed as a local one is. NULL for every other run.
ALTER TABLE runs ADD COLUMN confirmed_by TEXT;
