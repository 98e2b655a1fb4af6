-- PostgreSQL twin of sqlite/0023_confirmed_runs.sql.
-- A run started with its `confirm:` steps confirmed beforehand (`rota run --yes`, the API's
-- `confirm`), by whom. NULL for every other run.
ALTER TABLE runs ADD COLUMN confirmed_by TEXT COLLATE "C";
