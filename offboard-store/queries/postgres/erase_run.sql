UPDATE offboard.runs SET person_id = $1, body = $2 WHERE id = $3 AND NOT open AND finished_at < $4
