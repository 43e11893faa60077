INSERT INTO offboard.runs (id, person_id, state, open, version, created_at, finished_at, body)
VALUES ($1, $2, $3, $4, 1, $5, $6, $7)
ON CONFLICT DO NOTHING
