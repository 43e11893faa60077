-- Erasure: a record naming the person only in its value gets its redacted value (the key
-- stays, the version moves on).
UPDATE offboard.records SET value = $3, version = version + 1 WHERE namespace = $1 AND key = $2
