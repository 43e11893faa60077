SELECT cursor FROM offboard_cursors WHERE source = ?1
