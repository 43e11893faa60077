-- Several runs and their tasks in one statement (one snapshot, one round trip); the ids come
-- as one JSON array, so the text is the same for any number of them. One row per task, runs
-- together and their tasks in order; a single row with NULL task columns for a run without
-- tasks.
SELECT r.id, r.version, r.body, t.body, t.due_at
FROM offboard_runs r LEFT JOIN offboard_tasks t ON t.run_id = r.id
WHERE r.id IN (SELECT value FROM json_each(?1))
ORDER BY r.id, t.position
