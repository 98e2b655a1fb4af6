-- Run artifacts (twin of postgres/0021_artifacts.sql): the files a step attempt left in
-- `$ROTA_ARTIFACTS`, one row per (run, step, path); a later attempt of the step replaces
-- an earlier one's file of the same path. The bytes live in the artifact store under
-- `stored_key` (`<namespace>/<YYYY-MM-DD>/<run id>/<step>/<path>`); `sha256` is their
-- digest, hex.
CREATE TABLE artifacts (
    run_id     TEXT   NOT NULL REFERENCES runs (id),
    step_id    TEXT   NOT NULL,
    path       TEXT   NOT NULL,
    attempt    BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT   NOT NULL,
    stored_key TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_id, path)
) WITHOUT ROWID;
