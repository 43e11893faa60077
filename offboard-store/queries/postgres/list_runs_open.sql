-- list_runs of open runs (any person): served by the partial index runs_open.
SELECT id, person_id, state, created_at, finished_at
FROM offboard.runs
WHERE open
  AND ($1::text IS NULL OR person_id = $1)
  AND ($2::text IS NULL OR created_at >= $2)
  AND ($3::text IS NULL OR created_at < $3)
  AND (NOT $4 OR open)
ORDER BY created_at DESC, id DESC
LIMIT $5
