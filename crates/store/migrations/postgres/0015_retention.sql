-- Retention (PostgreSQL twin of sqlite/0015_retention.sql): how long each namespace keeps its finished runs, and where the audit chain
-- starts once its oldest entries were pruned.

-- Per namespace: finished runs older than `keep_secs` are pruned by `rota serve` (at start
-- and hourly). No row: kept forever.
CREATE TABLE namespace_retention (
    namespace  TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    keep_secs  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT COLLATE "C"   NOT NULL
);

-- The audit chain's anchor (one row, absent until audit entries are first pruned): the
-- first entry kept and the hash of the last one pruned, which it links to. An
-- `audit.checkpoint` entry written in the same transaction records it in the chain itself.
CREATE TABLE audit_anchor (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    first_id  BIGINT  NOT NULL,
    prev_hash TEXT COLLATE "C"    NOT NULL
);

-- Pruning looks for runs that finished before a cut-off.
CREATE INDEX runs_by_finished ON runs (finished_at);
