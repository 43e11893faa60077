-- Stores a record at version 1 unless one exists under its key; returns it if stored.
INSERT INTO offboard.records (namespace, key, version, value) VALUES ($1, $2, 1, $3)
ON CONFLICT (namespace, key) DO NOTHING
RETURNING version, value
