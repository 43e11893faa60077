-- offboard schema version 3 (PostgreSQL): a person has at most one open run. The engine checks
-- before submitting, but two submits racing for one person (an HR feed and an operator at the
-- same moment, or two workers' hosts) both pass that check; this index makes the second
-- insert do nothing, atomically.
CREATE UNIQUE INDEX runs_one_open ON offboard.runs (person_id) WHERE open;
