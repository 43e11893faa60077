DELETE FROM offboard.accounts WHERE person_id = $1
