DELETE FROM offboard.audit_personal WHERE run_id = ANY($1::text[]) OR person_id = $2
