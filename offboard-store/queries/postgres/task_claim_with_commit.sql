-- A lease taken with a commit (`Commit::claims`): only on a task of the commit's run that holds
-- no lease. One row changed, or the commit is refused. It expires at $5 (the caller's clock)
-- or, when NULL, the database's now() plus $6 microseconds.
UPDATE offboard.tasks
SET lease_owner = $3, lease_token = $4,
    lease_until = COALESCE($5, to_char((now() + $6::float8 * interval '1 microsecond')
        AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"')),
    claims = claims + 1
WHERE id = $1 AND run_id = $2 AND lease_token IS NULL
