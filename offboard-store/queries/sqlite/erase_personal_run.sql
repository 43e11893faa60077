DELETE FROM offboard_audit_personal WHERE run_id = ?1
