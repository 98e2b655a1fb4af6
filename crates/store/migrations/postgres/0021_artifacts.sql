-- Run artifacts; see migrations/sqlite/0021_artifacts.sql.
CREATE TABLE artifacts (
    run_id     TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    step_id    TEXT COLLATE "C" NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
    attempt    BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT COLLATE "C" NOT NULL,
    stored_key TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_id, path)
);
