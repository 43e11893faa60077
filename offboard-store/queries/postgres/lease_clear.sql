UPDATE offboard.tasks SET lease_owner = NULL, lease_token = NULL, lease_until = NULL
WHERE id = $1 AND lease_token = $2
