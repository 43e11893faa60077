-- Locks the chain head: appends are serialised, each reads the hash it links to.
SELECT seq, hash FROM offboard.audit_head WHERE id = 1 FOR UPDATE
