-- The schema version of each stored job definition; see
-- migrations/sqlite/0013_definition_version.sql.
ALTER TABLE job_revisions ADD COLUMN definition_version BIGINT NOT NULL DEFAULT 1;
