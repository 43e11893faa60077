-- Replaces a record's value if its version is still the expected one; returns it if so.
UPDATE offboard.records SET value = $4, version = version + 1
WHERE namespace = $1 AND key = $2 AND version = $3
RETURNING version, value
