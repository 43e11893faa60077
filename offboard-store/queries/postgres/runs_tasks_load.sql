SELECT run_id, body, due_at FROM offboard.tasks WHERE run_id = ANY($1) ORDER BY run_id, position
