-- The HTTP API's own state: bearer tokens with their roles, and the hash-chained audit log;
-- see migrations/sqlite/0003_api.sql.

CREATE TABLE tokens (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name         TEXT COLLATE "C" NOT NULL,
    hash         TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE token_grants (
    token_id  TEXT COLLATE "C" NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    namespace TEXT COLLATE "C" NOT NULL,
    role      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (token_id, namespace)
);

-- `id` is given by the store (the chain's next number), as in SQLite's INTEGER PRIMARY KEY.
CREATE TABLE audit (
    id        BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT COLLATE "C" NOT NULL,
    action    TEXT COLLATE "C" NOT NULL,
    target    TEXT COLLATE "C" NOT NULL,
    source    TEXT COLLATE "C",
    result    TEXT COLLATE "C" NOT NULL,
    prev_hash TEXT COLLATE "C" NOT NULL,
    hash      TEXT COLLATE "C" NOT NULL
);

CREATE TABLE audit_head (
    one     BIGINT PRIMARY KEY CHECK (one = 1),
    last_id BIGINT NOT NULL,
    hash    TEXT COLLATE "C" NOT NULL
);
