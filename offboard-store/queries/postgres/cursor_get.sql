SELECT cursor FROM offboard.cursors WHERE source = $1
