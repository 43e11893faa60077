INSERT INTO offboard_cursors (source, cursor) VALUES (?1, ?2)
ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor
