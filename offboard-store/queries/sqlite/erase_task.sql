UPDATE offboard_tasks SET body = ?1 WHERE id = ?2
