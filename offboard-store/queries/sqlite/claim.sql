-- Claims due tasks in one statement: due, lease free or expired, run still open;
-- earliest due first. Each claimed row gets a fresh random token.
UPDATE offboard_tasks
SET lease_owner = ?1, lease_token = randomblob(16), lease_until = ?2, claims = claims + 1
WHERE rowid IN (
    SELECT t.rowid
    FROM offboard_tasks t JOIN offboard_runs r ON r.id = t.run_id
    WHERE t.due_at IS NOT NULL AND t.due_at <= ?3
      AND (t.lease_until IS NULL OR t.lease_until <= ?3)
      AND r.open = 1
    ORDER BY t.due_at, t.id
    LIMIT ?4
)
RETURNING run_id, id, lease_token, claims, due_at,
    (SELECT version FROM offboard_runs r WHERE r.id = offboard_tasks.run_id)
