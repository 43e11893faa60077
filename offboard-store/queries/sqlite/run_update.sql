-- A run's new body under the version check. The queried columns (and their indexes) are
-- written by run_update_columns only when they change: most commits change a task, not the
-- run's state.
UPDATE offboard_runs
SET body = ?2, version = version + 1
WHERE id = ?1 AND version = ?3
