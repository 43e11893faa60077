SELECT a.body, p.salt, p.vals FROM offboard.audit a
LEFT JOIN offboard.audit_personal p ON p.seq = a.seq
WHERE a.run_id = $1 AND a.seq > $2 ORDER BY a.seq LIMIT $3
