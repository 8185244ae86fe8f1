-- The gauge of follow-ups still unrecorded long after their escalation, read at every scrape of
-- /metrics (trisam_followups_unrecorded_after_escalation): only those rows, not every follow-up.
CREATE INDEX followups_escalated_unrecorded ON followups (escalated_at) WHERE status = 'due' AND escalated_at IS NOT NULL;
