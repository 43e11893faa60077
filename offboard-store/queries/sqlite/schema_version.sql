SELECT max(version) FROM offboard_schema_migrations WHERE success
