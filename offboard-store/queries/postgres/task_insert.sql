INSERT INTO offboard.tasks (id, run_id, position, body, due_at)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::text[], $5::text[])
