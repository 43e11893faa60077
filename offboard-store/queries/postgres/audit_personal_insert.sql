INSERT INTO offboard.audit_personal (seq, run_id, person_id, salt, vals)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
