-- offboard schema version 2 (PostgreSQL): find open runs without scanning every run ever made.
-- Submitting checks the person for an open run (runs_person serves that), and workers and
-- operators list open runs; both stay fast however long the history grows.
CREATE INDEX runs_open ON offboard.runs (created_at, id) WHERE open;
