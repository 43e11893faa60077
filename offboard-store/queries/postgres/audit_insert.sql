-- Stores sealed events and moves the chain head to the last one, in one statement (the head
-- row is locked by audit_head.sql earlier in the same transaction).
WITH inserted AS (
    INSERT INTO offboard.audit (seq, run_id, at, hash, body)
    SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
)
UPDATE offboard.audit_head SET seq = $6, hash = $7 WHERE id = 1
