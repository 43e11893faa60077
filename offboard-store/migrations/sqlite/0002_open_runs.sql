-- offboard schema version 2 (SQLite): find open runs without scanning every run ever made.
-- Submitting checks the person for an open run (offboard_runs_person serves that), and
-- workers and operators list open runs; both stay fast however long the history grows.
CREATE INDEX offboard_runs_open ON offboard_runs (created_at, id) WHERE open = 1;
