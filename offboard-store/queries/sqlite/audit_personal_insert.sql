INSERT INTO offboard_audit_personal (seq, run_id, person_id, salt, vals) VALUES (?1, ?2, ?3, ?4, ?5)
