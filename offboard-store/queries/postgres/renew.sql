UPDATE offboard.tasks SET lease_until = $1
WHERE id = $2 AND run_id = $3 AND lease_token = $4
RETURNING lease_owner, claims
