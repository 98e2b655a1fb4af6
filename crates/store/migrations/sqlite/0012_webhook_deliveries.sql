-- Webhook deliveries a server accepted, so the same delivery sent again is refused (replay).
-- `delivery_key` is `id:<X-GitHub-Delivery or Idempotency-Key>` or, for GitHub-signed hooks
-- whose signature covers only the body, `body:<SHA-256 of the body>`. Rows are recorded in
-- the same transaction as the occurrence (and run) the delivery made, and pruned once older
-- than the server's replay window.
CREATE TABLE webhook_deliveries (
    namespace    TEXT   NOT NULL,
    job_id       TEXT   NOT NULL,
    delivery_key TEXT   NOT NULL,
    received_at  BIGINT NOT NULL,
    run_id       TEXT,
    PRIMARY KEY (namespace, job_id, delivery_key)
);
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (received_at);
