-- A run and its tasks in one statement (one snapshot, one round trip): one row per task in
-- order, or a single row with NULL task columns for a run without tasks.
SELECT r.version, r.body, t.body, t.due_at
FROM offboard_runs r LEFT JOIN offboard_tasks t ON t.run_id = r.id
WHERE r.id = ?1
ORDER BY t.position
