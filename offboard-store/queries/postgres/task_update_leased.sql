-- A leased task's new row, written only while the lease is held (its token is the task's
-- current one; the update locks the row until the commit ends): the lease check and the write
-- in one statement. With $6 the lease is released by the same statement.
UPDATE offboard.tasks
SET body = $4, due_at = $5,
    lease_owner = CASE WHEN $6::boolean THEN NULL ELSE lease_owner END,
    lease_token = CASE WHEN $6::boolean THEN NULL ELSE lease_token END,
    lease_until = CASE WHEN $6::boolean THEN NULL ELSE lease_until END
WHERE id = $1 AND run_id = $2 AND lease_token = $3
