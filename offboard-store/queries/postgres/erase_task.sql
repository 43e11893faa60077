UPDATE offboard.tasks SET body = $1 WHERE id = $2
