-- A run's queried columns, written only when they changed (person and creation time never
-- change), so the indexes on them are left alone otherwise.
UPDATE offboard_runs
SET state = ?2, open = ?3, finished_at = ?4
WHERE id = ?1 AND (state IS NOT ?2 OR open IS NOT ?3 OR finished_at IS NOT ?4)
