DELETE FROM offboard_records WHERE namespace = ?1 AND key = ?2
