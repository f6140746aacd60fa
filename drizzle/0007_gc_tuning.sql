-- Cleanup tuning (issue #4) needed no schema change after all: every foreign key to content_units
-- and artifacts already had its index; the fix was in the queries (src/content/cleanup.ts). The
-- migration stays so that the sequence of applied migrations is the same everywhere.
SELECT 1;
