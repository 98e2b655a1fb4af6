-- `approval:` gates in the middle of a run; see migrations/sqlite/0019_approval_gates.sql.
ALTER TABLE runs ADD COLUMN started_by TEXT COLLATE "C";

CREATE TABLE run_gates (
    run_id     TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    step_id    TEXT COLLATE "C" NOT NULL,
    hash       TEXT COLLATE "C" NOT NULL,
    rules      TEXT COLLATE "C" NOT NULL,
    message    TEXT COLLATE "C",
    status     TEXT COLLATE "C" NOT NULL,
    opened_at  BIGINT NOT NULL,
    expires_at BIGINT,
    decided_at BIGINT,
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX run_gates_open ON run_gates (status, expires_at);

CREATE TABLE gate_decisions (
    run_id   TEXT COLLATE "C" NOT NULL,
    step_id  TEXT COLLATE "C" NOT NULL,
    actor    TEXT COLLATE "C" NOT NULL,
    at       BIGINT NOT NULL,
    hash     TEXT COLLATE "C" NOT NULL,
    decision TEXT COLLATE "C" NOT NULL,
    comment  TEXT COLLATE "C",
    PRIMARY KEY (run_id, step_id, actor),
    FOREIGN KEY (run_id, step_id) REFERENCES run_gates (run_id, step_id)
);
