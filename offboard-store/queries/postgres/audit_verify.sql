-- A page of the trail for verification: each row's hashed body and the indexed columns kept
-- beside it, which verification compares with the body, and its personal values if any,
-- which verification compares with the body's commitments.
SELECT a.seq, a.body, a.run_id, a.at, a.hash, p.salt, p.vals FROM offboard.audit a
LEFT JOIN offboard.audit_personal p ON p.seq = a.seq
WHERE a.seq > $1 ORDER BY a.seq LIMIT $2
