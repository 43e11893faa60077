DELETE FROM offboard_accounts WHERE person_id = ?1
