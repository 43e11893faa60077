SELECT max(version) FROM offboard.schema_migrations WHERE success
