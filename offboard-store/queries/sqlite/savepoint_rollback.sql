ROLLBACK TO offboard_write
