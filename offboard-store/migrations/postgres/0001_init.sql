-- offboard schema version 1 (PostgreSQL). Everything lives in schema `offboard`. Times are
-- RFC 3339 UTC text with nine fractional digits (collation "C"), so text order is time order
-- and values round-trip exactly.
CREATE TABLE offboard.runs (
    id          TEXT COLLATE "C" PRIMARY KEY,
    person_id   TEXT COLLATE "C" NOT NULL,
    state       TEXT NOT NULL,
    open        BOOLEAN NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    finished_at TEXT COLLATE "C",
    body        TEXT NOT NULL
);
CREATE INDEX runs_created ON offboard.runs (created_at, id);
CREATE INDEX runs_person ON offboard.runs (person_id, created_at);

CREATE TABLE offboard.tasks (
    id          TEXT COLLATE "C" PRIMARY KEY,
    run_id      TEXT COLLATE "C" NOT NULL REFERENCES offboard.runs (id),
    position    INTEGER NOT NULL,
    body        TEXT NOT NULL,
    due_at      TEXT COLLATE "C",
    lease_owner TEXT,
    lease_token UUID,
    lease_until TEXT COLLATE "C",
    claims      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, position)
);
CREATE INDEX tasks_due ON offboard.tasks (due_at, id) WHERE due_at IS NOT NULL;

CREATE TABLE offboard.snapshots (
    task_id TEXT COLLATE "C" PRIMARY KEY,
    body    TEXT NOT NULL
);

CREATE TABLE offboard.accounts (
    person_id   TEXT COLLATE "C" NOT NULL,
    app         TEXT COLLATE "C" NOT NULL,
    external_id TEXT COLLATE "C" NOT NULL,
    account     TEXT NOT NULL,
    first_seen  TEXT COLLATE "C" NOT NULL,
    last_seen   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (person_id, app, external_id)
);

CREATE TABLE offboard.cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);

CREATE TABLE offboard.audit (
    seq    BIGINT PRIMARY KEY,
    run_id TEXT COLLATE "C",
    at     TEXT COLLATE "C" NOT NULL,
    hash   TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE INDEX audit_run ON offboard.audit (run_id, seq) WHERE run_id IS NOT NULL;

-- The end of the chain: appends lock this row (serialising them), and verification compares
-- it with the last stored event, so a truncated trail is noticed.
CREATE TABLE offboard.audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO offboard.audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Audit events are append-only.
CREATE FUNCTION offboard.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'offboard audit events are append-only';
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON offboard.audit
    FOR EACH ROW EXECUTE FUNCTION offboard.audit_append_only();
