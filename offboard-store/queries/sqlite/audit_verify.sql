-- A page of the trail for verification: each row's hashed body and the indexed columns kept
-- beside it, which verification compares with the body.
SELECT seq, body, run_id, at, hash FROM offboard_audit WHERE seq > ?1 ORDER BY seq LIMIT ?2
