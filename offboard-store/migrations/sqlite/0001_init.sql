-- offboard schema version 1 (SQLite). Times are RFC 3339 UTC text with nine fractional digits,
-- so text order is time order and values round-trip exactly.
CREATE TABLE offboard_runs (
    id          TEXT PRIMARY KEY NOT NULL,
    person_id   TEXT NOT NULL,
    state       TEXT NOT NULL,
    open        INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    finished_at TEXT,
    body        TEXT NOT NULL
);
CREATE INDEX offboard_runs_created ON offboard_runs (created_at, id);
CREATE INDEX offboard_runs_person ON offboard_runs (person_id, created_at);

CREATE TABLE offboard_tasks (
    id          TEXT PRIMARY KEY NOT NULL,
    run_id      TEXT NOT NULL REFERENCES offboard_runs (id),
    position    INTEGER NOT NULL,
    body        TEXT NOT NULL,
    due_at      TEXT,
    lease_owner TEXT,
    lease_token BLOB,
    lease_until TEXT,
    claims      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, position)
);
CREATE INDEX offboard_tasks_due ON offboard_tasks (due_at, id) WHERE due_at IS NOT NULL;

CREATE TABLE offboard_snapshots (
    task_id TEXT PRIMARY KEY NOT NULL,
    body    TEXT NOT NULL
);

CREATE TABLE offboard_accounts (
    person_id   TEXT NOT NULL,
    app         TEXT NOT NULL,
    external_id TEXT NOT NULL,
    account     TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (person_id, app, external_id)
);

CREATE TABLE offboard_cursors (
    source TEXT PRIMARY KEY NOT NULL,
    cursor TEXT NOT NULL
);

CREATE TABLE offboard_audit (
    seq    INTEGER PRIMARY KEY NOT NULL,
    run_id TEXT,
    at     TEXT NOT NULL,
    hash   TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE INDEX offboard_audit_run ON offboard_audit (run_id, seq) WHERE run_id IS NOT NULL;

-- The end of the chain: appends read and move it in the same transaction, and verification
-- compares it with the last stored event, so a truncated trail is noticed.
CREATE TABLE offboard_audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO offboard_audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Audit events are append-only.
CREATE TRIGGER offboard_audit_no_update BEFORE UPDATE ON offboard_audit
BEGIN
    SELECT RAISE(ABORT, 'offboard audit events are append-only');
END;
CREATE TRIGGER offboard_audit_no_delete BEFORE DELETE ON offboard_audit
BEGIN
    SELECT RAISE(ABORT, 'offboard audit events are append-only');
END;
