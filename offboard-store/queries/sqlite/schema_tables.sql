-- Every table in the file (to tell our database from someone else's).
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
