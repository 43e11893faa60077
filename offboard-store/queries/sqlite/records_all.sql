SELECT namespace, key, value FROM offboard_records
