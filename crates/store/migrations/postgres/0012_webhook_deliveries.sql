-- Webhook deliveries a server accepted (replay protection); see
-- migrations/sqlite/0012_webhook_deliveries.sql.
CREATE TABLE webhook_deliveries (
    namespace    TEXT COLLATE "C" NOT NULL,
    job_id       TEXT COLLATE "C" NOT NULL,
    delivery_key TEXT COLLATE "C" NOT NULL,
    received_at  BIGINT NOT NULL,
    run_id       TEXT COLLATE "C",
    PRIMARY KEY (namespace, job_id, delivery_key)
);
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (received_at);
