SELECT version, body FROM offboard_runs WHERE id = ?1
