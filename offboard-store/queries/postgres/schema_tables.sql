-- Our schema's tables (to tell our schema from someone else's use of the name).
SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'offboard'
