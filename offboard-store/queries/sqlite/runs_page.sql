-- A page of runs created in [?1, ?2), oldest first, after the key (?3, ?4).
SELECT id, created_at FROM offboard_runs
WHERE created_at >= ?1 AND created_at < ?2 AND (created_at, id) > (?3, ?4)
ORDER BY created_at, id
LIMIT ?5
