INSERT INTO offboard_tasks (id, run_id, position, body, due_at)
VALUES (?1, ?2, ?3, ?4, ?5)
