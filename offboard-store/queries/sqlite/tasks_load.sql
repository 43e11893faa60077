SELECT body, due_at FROM offboard_tasks WHERE run_id = ?1 ORDER BY position
