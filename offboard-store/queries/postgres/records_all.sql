SELECT namespace, key, value FROM offboard.records FOR UPDATE
