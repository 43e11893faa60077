SELECT account, first_seen, last_seen FROM offboard_accounts
WHERE person_id = ?1 ORDER BY app, external_id
