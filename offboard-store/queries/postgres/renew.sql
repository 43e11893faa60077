-- The lease expires at $1 (the caller's clock) or, when NULL, the database's now() plus $5
-- microseconds.
UPDATE offboard.tasks
SET lease_until = COALESCE($1, to_char((now() + $5::float8 * interval '1 microsecond')
    AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"'))
WHERE id = $2 AND run_id = $3 AND lease_token = $4
RETURNING lease_owner, claims
