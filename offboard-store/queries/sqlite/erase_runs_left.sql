SELECT id FROM offboard_runs WHERE person_id = ?1 LIMIT 1
