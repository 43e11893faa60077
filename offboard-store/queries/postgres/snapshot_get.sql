SELECT body FROM offboard.snapshots WHERE task_id = $1
