-- When the case was closed (CaseClosed's closed_at), whatever its status here (a consulted case
-- is closed later, by the follow-up service): its retention period runs from it. Cases closed
-- before this column: from their last change.
ALTER TABLE cases ADD COLUMN closed_at timestamptz;
UPDATE cases SET closed_at = updated_at WHERE status = 'closed';
CREATE INDEX cases_closed ON cases (closed_at) WHERE closed_at IS NOT NULL;
