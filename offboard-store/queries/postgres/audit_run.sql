SELECT body FROM offboard.audit WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
