-- The secrets store: encrypted values, versioned, per namespace, and which run used which.

-- One version of one secret. The value is sealed by the caller (rota-secrets: an AEAD
-- whose associated data binds namespace, name and version), so only the nonce and the
-- ciphertext are stored, never the plaintext. Versions count from 1 and are never reused,
-- deleted ones included, so a (namespace, name, version) names one value forever.
CREATE TABLE secrets (
    namespace  TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    nonce      BLOB   NOT NULL,
    ciphertext BLOB   NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    deleted_at BIGINT,
    PRIMARY KEY (namespace, name, version)
);

-- Which secret versions a run received (version NULL: the value came from the process
-- environment, not the store). Rows are written before the run executes, and may name a
-- run id whose run row is created just after, so there is no foreign key.
CREATE TABLE run_secrets (
    run_id    TEXT   NOT NULL,
    namespace TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    version   BIGINT,
    used_at   BIGINT NOT NULL,
    PRIMARY KEY (run_id, namespace, name)
);
