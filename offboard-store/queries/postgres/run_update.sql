UPDATE offboard.runs
SET person_id = $1, state = $2, open = $3, created_at = $4, finished_at = $5, body = $6,
    version = version + 1
WHERE id = $7 AND version = $8
