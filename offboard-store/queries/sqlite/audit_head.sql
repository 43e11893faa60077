SELECT seq, hash FROM offboard_audit_head WHERE id = 1
