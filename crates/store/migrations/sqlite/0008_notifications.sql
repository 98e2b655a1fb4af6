-- The notification outbox. A row is written in the same transaction as the run event that
-- caused it (the run's end, or `duration_exceeded` while it runs), so a notification is never
-- lost between "the run ended" and "the team was told"; deliverers (`rota run` before it
-- exits, `rota serve` every second) send due rows and record each outcome.
--
-- No secret is stored here: the target URL and header values are kept as the job file's
-- templates and rendered when sent, with the secrets resolved at that moment; the payload
-- holds only run facts. No foreign key to runs: like `events`, it outlives what it describes.
CREATE TABLE notifications (
    id               TEXT    NOT NULL PRIMARY KEY,
    run_id           TEXT    NOT NULL,
    namespace        TEXT    NOT NULL,
    job_id           TEXT    NOT NULL,
    rule             BIGINT  NOT NULL,
    event            TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    url_template     TEXT    NOT NULL,
    headers_template TEXT    NOT NULL,
    render_context   TEXT    NOT NULL,
    secret_names     TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL,
    next_attempt_at  BIGINT  NOT NULL,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    sent_at          BIGINT,
    -- One notification per rule and event of a run, even if the event is recorded twice
    -- (a resumed run passing its `duration_exceeded` deadline again).
    UNIQUE (run_id, rule, event)
);
-- Deliverers look for due pending rows.
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
