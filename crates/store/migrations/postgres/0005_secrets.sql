-- The secrets store: encrypted values, versioned, per namespace, and which run used which;
-- see migrations/sqlite/0005_secrets.sql. SQLite's BLOB is BYTEA here.

CREATE TABLE secrets (
    namespace  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    nonce      BYTEA  NOT NULL,
    ciphertext BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    deleted_at BIGINT,
    PRIMARY KEY (namespace, name, version)
);

CREATE TABLE run_secrets (
    run_id    TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    version   BIGINT,
    used_at   BIGINT NOT NULL,
    PRIMARY KEY (run_id, namespace, name)
);
