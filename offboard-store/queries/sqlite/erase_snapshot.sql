DELETE FROM offboard_snapshots WHERE task_id = ?1
