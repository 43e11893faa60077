-- Locks the task row: a concurrent claim skips it until this transaction ends.
SELECT 1 FROM offboard.tasks WHERE id = $1 AND run_id = $2 AND lease_token = $3 FOR UPDATE
