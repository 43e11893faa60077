SELECT a.seq, a.body, p.salt, p.vals FROM offboard_audit a
LEFT JOIN offboard_audit_personal p ON p.seq = a.seq
WHERE a.seq > ?1 ORDER BY a.seq LIMIT ?2
