SELECT version FROM offboard_runs WHERE id = ?1
