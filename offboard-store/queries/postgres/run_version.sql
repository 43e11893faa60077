SELECT version FROM offboard.runs WHERE id = $1
