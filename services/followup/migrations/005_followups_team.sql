-- A team's follow-ups for its rehab coordinator (GET /api/v1/teams/{team_id}/followups).
CREATE INDEX followups_team ON followups (team_id, status, due_on);
