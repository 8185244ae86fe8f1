-- The append-only tables refuse TRUNCATE too (row triggers do not see it).
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER consent_history_no_truncate BEFORE TRUNCATE ON consent_history
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
