SELECT 1 FROM offboard_tasks WHERE id = ?1 AND run_id = ?2 AND lease_token = ?3
