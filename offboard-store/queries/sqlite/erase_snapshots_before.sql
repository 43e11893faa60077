-- Snapshot payloads of finished runs past the rollback window (retention).
DELETE FROM offboard_snapshots WHERE task_id IN (
    SELECT t.id FROM offboard_tasks t JOIN offboard_runs r ON r.id = t.run_id
    WHERE r.open = 0 AND r.finished_at IS NOT NULL AND r.finished_at < ?1
)
