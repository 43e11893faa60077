-- Snapshot payloads of finished runs past the rollback window (retention).
DELETE FROM offboard.snapshots WHERE task_id IN (
    SELECT t.id FROM offboard.tasks t JOIN offboard.runs r ON r.id = t.run_id
    WHERE NOT r.open AND r.finished_at IS NOT NULL AND r.finished_at < $1
)
