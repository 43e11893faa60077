INSERT INTO offboard_accounts (person_id, app, external_id, account, first_seen, last_seen)
VALUES (?1, ?2, ?3, ?4, ?5, ?5)
ON CONFLICT (person_id, app, external_id) DO UPDATE
SET account = excluded.account, last_seen = max(offboard_accounts.last_seen, excluded.last_seen)
