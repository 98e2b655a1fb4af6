-- `approval:` gates in the middle of a run (SPEC §2).
--
-- `runs.started_by` is who asked for the run (an API token's actor, `local:<user>`), NULL
-- for a run a schedule, webhook or `after` trigger started: a gate refuses that actor's
-- approval unless it allows self-approval.
ALTER TABLE runs ADD COLUMN started_by TEXT;

-- A gate the run reached and waits at. `hash` is what its decisions bind to: the steps
-- from the gate on, rendered with the run's parameters and the outputs before the gate.
-- `rules` holds the step's approval rules as JSON. Status: awaiting_approval, approved,
-- rejected, expired or cancelled (the run was cancelled while it waited).
CREATE TABLE run_gates (
    run_id     TEXT    NOT NULL REFERENCES runs (id),
    step_id    TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    rules      TEXT    NOT NULL,
    message    TEXT,
    status     TEXT    NOT NULL,
    opened_at  BIGINT  NOT NULL,
    expires_at BIGINT,
    decided_at BIGINT,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
CREATE INDEX run_gates_open ON run_gates (status, expires_at);

-- One decision per actor and gate; `hash` is the gate's hash the actor decided on.
CREATE TABLE gate_decisions (
    run_id   TEXT    NOT NULL,
    step_id  TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    at       BIGINT  NOT NULL,
    hash     TEXT    NOT NULL,
    decision TEXT    NOT NULL,
    comment  TEXT,
    PRIMARY KEY (run_id, step_id, actor),
    FOREIGN KEY (run_id, step_id) REFERENCES run_gates (run_id, step_id)
) WITHOUT ROWID;
