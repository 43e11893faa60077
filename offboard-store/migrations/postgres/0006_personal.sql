-- offboard schema version 6 (PostgreSQL): the personal values of audit events, kept beside the
-- events so that they can be erased (Store::erase_person) while the chain still verifies.
-- An event's body (offboard.audit, append-only) holds a salted commitment in place of each
-- personal value; its values and salt are here, under its seq, filed by its run and the
-- person it names.
CREATE TABLE offboard.audit_personal (
    seq       BIGINT PRIMARY KEY,
    run_id    TEXT COLLATE "C",
    person_id TEXT COLLATE "C",
    salt      TEXT NOT NULL,
    vals      TEXT NOT NULL
);
CREATE INDEX audit_personal_run ON offboard.audit_personal (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX audit_personal_person ON offboard.audit_personal (person_id)
    WHERE person_id IS NOT NULL;

-- Values are never changed (a changed value would no longer match its commitment), and only
-- erasure deletes them: the erasing transaction sets offboard.erasing to 'on' (SET LOCAL),
-- and any other DELETE, and TRUNCATE, is refused.
CREATE FUNCTION offboard.audit_personal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('offboard.erasing', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'offboard personal values are only deleted by erasure, never changed';
END
$$;
CREATE TRIGGER audit_personal_guard BEFORE UPDATE OR DELETE ON offboard.audit_personal
    FOR EACH ROW EXECUTE FUNCTION offboard.audit_personal_guard();
CREATE TRIGGER audit_personal_no_truncate BEFORE TRUNCATE ON offboard.audit_personal
    FOR EACH STATEMENT EXECUTE FUNCTION offboard.audit_append_only();
