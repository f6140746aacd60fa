-- Sync tuning (issue #4) needed no schema change after all: download slots and batched adoption
-- use the existing slot_locks and task_artifacts tables. The migration stays so that the sequence
-- of applied migrations is the same everywhere.
SELECT 1;
