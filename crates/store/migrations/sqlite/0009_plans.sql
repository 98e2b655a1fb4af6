-- Plans: a run resolved but not executed (SPEC §1, §3). `content` is the resolved plan as
-- JSON (steps with rendered templates, parameters, secret names and versions; never a
-- secret's value) and `hash` its content hash, which approvals bind to. `approval` holds the
-- job's approval rules as they were when the plan was made (NULL: none, the plan is
-- approved when created). `run_id` is the one run an apply created; the conditional update
-- that sets it (status 'approved' → 'applied') makes a second apply impossible.
CREATE TABLE plans (
    id          TEXT    NOT NULL PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    job_id      TEXT    NOT NULL,
    job_revision BIGINT NOT NULL,
    hash        TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    approval    TEXT,
    status      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT,
    dry_run_id  TEXT,
    run_id      TEXT UNIQUE,
    applied_by  TEXT,
    applied_at  BIGINT,
    FOREIGN KEY (namespace, job_id, job_revision)
        REFERENCES job_revisions (namespace, job_id, revision)
);
CREATE INDEX plans_by_created ON plans (created_at DESC, id DESC);
CREATE INDEX plans_by_namespace ON plans (namespace, created_at DESC, id DESC);

-- One decision per actor and plan; `hash` is the plan hash the actor saw and approved.
CREATE TABLE plan_decisions (
    plan_id  TEXT    NOT NULL REFERENCES plans (id),
    actor    TEXT    NOT NULL,
    at       BIGINT  NOT NULL,
    hash     TEXT    NOT NULL,
    decision TEXT    NOT NULL,
    comment  TEXT,
    PRIMARY KEY (plan_id, actor)
);
