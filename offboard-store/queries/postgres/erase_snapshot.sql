DELETE FROM offboard.snapshots WHERE task_id = ANY($1::text[])
