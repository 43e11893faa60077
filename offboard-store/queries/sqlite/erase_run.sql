UPDATE offboard_runs SET person_id = ?1, body = ?2 WHERE id = ?3 AND open = 0 AND finished_at < ?4
