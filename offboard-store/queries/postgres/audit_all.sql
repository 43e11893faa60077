SELECT seq, body FROM offboard.audit WHERE seq > $1 ORDER BY seq LIMIT $2
