SELECT seq, body FROM offboard_audit WHERE seq > ?1 ORDER BY seq LIMIT ?2
