-- A record's version and value.
SELECT version, value FROM offboard_records WHERE namespace = ?1 AND key = ?2
