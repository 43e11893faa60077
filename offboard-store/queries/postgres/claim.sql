-- Claims due tasks in one statement: due, lease free or expired, run still open;
-- earliest due first; rows another claimer holds locked are skipped.
-- "Now" is $3 (the caller's clock) or, when NULL, the database's now() as stored text; the
-- lease expires at $2 or, when NULL, the database's now() plus $5 microseconds.
WITH due AS (
    SELECT t.id
    FROM offboard.tasks t JOIN offboard.runs r ON r.id = t.run_id
    WHERE t.due_at IS NOT NULL
      AND t.due_at <= COALESCE($3, to_char(now() AT TIME ZONE 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"'))
      AND (t.lease_until IS NULL
          OR t.lease_until <= COALESCE($3, to_char(now() AT TIME ZONE 'UTC',
              'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"')))
      AND r.open
    ORDER BY t.due_at, t.id
    LIMIT $4
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE offboard.tasks t
SET lease_owner = $1, lease_token = gen_random_uuid(),
    lease_until = COALESCE($2, to_char((now() + $5::float8 * interval '1 microsecond')
        AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"')),
    claims = t.claims + 1
FROM due
WHERE t.id = due.id
RETURNING t.run_id, t.id, t.lease_token, t.claims, t.due_at,
    (SELECT r.version FROM offboard.runs r WHERE r.id = t.run_id)
