-- A lease taken with a commit (`Commit::claims`): only on a task of the commit's run that holds
-- no lease. One row changed, or the commit is refused.
UPDATE offboard_tasks
SET lease_owner = ?3, lease_token = ?4, lease_until = ?5, claims = claims + 1
WHERE id = ?1 AND run_id = ?2 AND lease_token IS NULL
