-- PostgreSQL twin of sqlite/0022_resumed_notebooks.sql.
-- A retry that resumes a failed notebook step from its failed cell: the step it resumes,
-- whose executed notebook in the run named by `retry_of` it continues. NULL for every
-- other run.
ALTER TABLE runs ADD COLUMN resume_step TEXT COLLATE "C";
