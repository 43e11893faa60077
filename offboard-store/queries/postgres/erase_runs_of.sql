SELECT id, open, finished_at FROM offboard.runs WHERE person_id = $1 FOR UPDATE
