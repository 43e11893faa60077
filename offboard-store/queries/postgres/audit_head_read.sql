SELECT seq, hash FROM offboard.audit_head WHERE id = 1
