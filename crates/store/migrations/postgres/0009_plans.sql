-- Plans, their approvals and their one apply; see migrations/sqlite/0009_plans.sql.
CREATE TABLE plans (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace    TEXT COLLATE "C" NOT NULL,
    job_id       TEXT COLLATE "C" NOT NULL,
    job_revision BIGINT NOT NULL,
    hash         TEXT COLLATE "C" NOT NULL,
    content      TEXT COLLATE "C" NOT NULL,
    approval     TEXT COLLATE "C",
    status       TEXT COLLATE "C" NOT NULL,
    created_by   TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    dry_run_id   TEXT COLLATE "C",
    run_id       TEXT COLLATE "C" UNIQUE,
    applied_by   TEXT COLLATE "C",
    applied_at   BIGINT,
    FOREIGN KEY (namespace, job_id, job_revision)
        REFERENCES job_revisions (namespace, job_id, revision)
);
CREATE INDEX plans_by_created ON plans (created_at DESC, id DESC);
CREATE INDEX plans_by_namespace ON plans (namespace, created_at DESC, id DESC);

CREATE TABLE plan_decisions (
    plan_id  TEXT COLLATE "C" NOT NULL REFERENCES plans (id),
    actor    TEXT COLLATE "C" NOT NULL,
    at       BIGINT NOT NULL,
    hash     TEXT COLLATE "C" NOT NULL,
    decision TEXT COLLATE "C" NOT NULL,
    comment  TEXT COLLATE "C",
    PRIMARY KEY (plan_id, actor)
);
