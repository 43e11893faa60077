INSERT INTO offboard_audit (seq, run_id, at, hash, body) VALUES (?1, ?2, ?3, ?4, ?5)
