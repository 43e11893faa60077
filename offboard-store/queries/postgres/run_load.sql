SELECT version, body FROM offboard.runs WHERE id = $1
