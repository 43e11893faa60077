UPDATE offboard_tasks
SET lease_owner = NULL, lease_token = NULL, lease_until = NULL, due_at = ?1
WHERE id = ?2 AND run_id = ?3 AND lease_token = ?4
