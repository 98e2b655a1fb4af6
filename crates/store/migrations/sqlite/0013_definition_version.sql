-- The schema version of each stored job definition (rota_core::stored). Rows written
-- before this column are version 1, the first release's form.
ALTER TABLE job_revisions ADD COLUMN definition_version INTEGER NOT NULL DEFAULT 1;
