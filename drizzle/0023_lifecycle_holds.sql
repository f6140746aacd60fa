-- Tasks queued when this release is installed were submitted before holds existed: give them the
-- holds a submission now writes (src/content/sql/cairn_content_on_submitted.sql), so that nothing
-- they reference is reclaimed before they settle. An input whose payload is gone cannot be the case
-- yet (nothing was ever deleted), so this does not refuse.
-- (An input still pending is held by the commit that resolves it, as for any task.)
SELECT cairn_content_on_submitted(coalesce(array_agg(id), '{}')) FROM tasks WHERE state IN ('blocked', 'ready', 'running');
