INSERT INTO offboard.snapshots (task_id, body) VALUES ($1, $2) ON CONFLICT (task_id) DO NOTHING
