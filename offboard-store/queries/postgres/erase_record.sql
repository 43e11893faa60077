DELETE FROM offboard.records WHERE namespace = $1 AND key = $2
