-- The HTTP API's own state: bearer tokens with their roles, and the hash-chained audit log.

-- A bearer token. Only the SHA-256 (hex) of the token text is kept; the text itself is
-- shown once, when the token is created.
CREATE TABLE tokens (
    id           TEXT   NOT NULL PRIMARY KEY,
    name         TEXT   NOT NULL,
    hash         TEXT   NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- What a token may do: one role per namespace, or everywhere when namespace is '*'.
CREATE TABLE token_grants (
    token_id  TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    role      TEXT NOT NULL,
    PRIMARY KEY (token_id, namespace)
);

-- Who did what, when, from where, and how it went. Each entry carries the hash of the one
-- before it (`prev_hash`) and its own `hash` over its content and that link, so editing,
-- deleting or reordering entries breaks the chain. `id` counts from 1 without gaps.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        BIGINT  NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    source    TEXT,
    result    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

-- The chain's head (one row): the last entry's id and hash, written with each entry, so
-- cutting entries off the end is detected too.
CREATE TABLE audit_head (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    last_id BIGINT  NOT NULL,
    hash    TEXT    NOT NULL
);
