INSERT INTO offboard.tasks (id, run_id, position, body, due_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET body = excluded.body, due_at = excluded.due_at
WHERE offboard.tasks.run_id = excluded.run_id
