-- offboard schema version 5 (SQLite): the personal values of audit events, kept beside the
-- events so that they can be erased (Store::erase_person) while the chain still verifies.
-- An event's body (offboard_audit) holds a salted commitment in place of each personal value;
-- its values and salt are here, under its seq, filed by its run and the person it names.
CREATE TABLE offboard_audit_personal (
    seq       INTEGER PRIMARY KEY NOT NULL,
    run_id    TEXT,
    person_id TEXT,
    salt      TEXT NOT NULL,
    vals      TEXT NOT NULL
);
CREATE INDEX offboard_audit_personal_run ON offboard_audit_personal (run_id)
    WHERE run_id IS NOT NULL;
CREATE INDEX offboard_audit_personal_person ON offboard_audit_personal (person_id)
    WHERE person_id IS NOT NULL;
-- Values are written once and erased, never changed (a changed value would no longer match
-- its commitment; verification reports it).
CREATE TRIGGER offboard_audit_personal_no_update BEFORE UPDATE ON offboard_audit_personal
BEGIN
    SELECT RAISE(ABORT, 'offboard personal values are never changed, only erased');
END;
