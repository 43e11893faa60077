-- A record's version and value.
SELECT version, value FROM offboard.records WHERE namespace = $1 AND key = $2
