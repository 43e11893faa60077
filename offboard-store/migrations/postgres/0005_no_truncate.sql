-- offboard schema version 5 (PostgreSQL): TRUNCATE is refused on the audit trail and its chain
-- head. The row-level append-only trigger of version 1 does not fire on TRUNCATE, so without
-- these statement-level triggers anyone allowed to truncate could empty the trail (and, with
-- the head, leave nothing for verification to miss).
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON offboard.audit
    FOR EACH STATEMENT EXECUTE FUNCTION offboard.audit_append_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON offboard.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION offboard.audit_append_only();
