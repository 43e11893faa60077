DELETE FROM offboard_audit_personal WHERE person_id = ?1
