-- Teams as the meeting service's registry announces them (TeamUpdated): referrals to a team an
-- administrator created after start-up are accepted; a changed municipality is used.
CREATE TABLE registered_teams (
    team_id       text PRIMARY KEY,
    municipality  text NOT NULL,
    revision      int  NOT NULL,
    updated_at    timestamptz NOT NULL
);
