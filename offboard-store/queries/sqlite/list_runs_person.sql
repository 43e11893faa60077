-- list_runs for one person: served by offboard_runs_person.
SELECT id, person_id, state, created_at, finished_at
FROM offboard_runs
WHERE person_id = ?1
  AND (?2 IS NULL OR created_at >= ?2)
  AND (?3 IS NULL OR created_at < ?3)
  AND (?4 = 0 OR open = 1)
ORDER BY created_at DESC, id DESC
LIMIT ?5
