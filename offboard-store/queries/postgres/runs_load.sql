SELECT id, version, body FROM offboard.runs WHERE id = ANY($1)
