-- The notification outbox; see migrations/sqlite/0008_notifications.sql.
CREATE TABLE notifications (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    run_id           TEXT COLLATE "C" NOT NULL,
    namespace        TEXT COLLATE "C" NOT NULL,
    job_id           TEXT COLLATE "C" NOT NULL,
    rule             BIGINT NOT NULL,
    event            TEXT COLLATE "C" NOT NULL,
    channel          TEXT COLLATE "C" NOT NULL,
    url_template     TEXT COLLATE "C" NOT NULL,
    headers_template TEXT COLLATE "C" NOT NULL,
    render_context   TEXT COLLATE "C" NOT NULL,
    secret_names     TEXT COLLATE "C" NOT NULL,
    payload          TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT COLLATE "C",
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT,
    UNIQUE (run_id, rule, event)
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
