-- Team registry, calendars, agendas and consultations (replaces the walking skeleton's queue).

CREATE TABLE teams (
    team_id          text PRIMARY KEY,
    name             text NOT NULL,
    municipality     text NOT NULL,
    host_unit_type   text NOT NULL CHECK (host_unit_type IN ('health_centre', 'psychiatry')),
    host_unit_name   text NOT NULL,
    cadence_weeks    int  NOT NULL CHECK (cadence_weeks BETWEEN 2 AND 4),
    weekday          int  NOT NULL CHECK (weekday BETWEEN 0 AND 6),     -- Monday = 0
    meeting_time     time NOT NULL,                                     -- Swedish time
    capacity         int  NOT NULL CHECK (capacity BETWEEN 1 AND 50),
    cutoff_days      int  NOT NULL CHECK (cutoff_days BETWEEN 0 AND 28),
    fixed_members    jsonb NOT NULL,                                    -- party -> member id
    calendar_anchor  date NOT NULL,                 -- a date of the current calendar (cadence)
    revision         int  NOT NULL DEFAULT 1,
    file_version     int,                           -- registry file version it came from
    updated_by       text NOT NULL,                 -- 'registry-file' or the administrator
    updated_at       timestamptz NOT NULL
);

-- Dates without meetings: for one team, or for every team ('*').
CREATE TABLE skip_dates (
    team_id   text NOT NULL DEFAULT '*',
    on_date   date NOT NULL,
    reason    text NOT NULL,
    PRIMARY KEY (team_id, on_date)
);

CREATE TABLE meetings (
    meeting_id      text PRIMARY KEY,
    team_id         text NOT NULL REFERENCES teams,
    meeting_date    date NOT NULL,
    starts_at       timestamptz NOT NULL,
    cutoff_at       timestamptz NOT NULL,
    capacity        int  NOT NULL,
    -- open: agenda open; closed: cut-off passed, agenda fixed; cancelled
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'cancelled')),
    cancel_reason   text,
    cancel_note     text,            -- the coordinator's text for reason 'other'; never published
    cancelled_by    text,
    cancelled_at    timestamptz,
    pre_meeting_held_on  date,
    pre_meeting_recorded_by text,
    UNIQUE (team_id, meeting_date)
);
CREATE INDEX meetings_open_cutoff ON meetings (cutoff_at) WHERE status = 'open';

-- Every case referred to a team, and where it stands.
CREATE TABLE cases (
    case_ref         text PRIMARY KEY,
    team_id          text NOT NULL,
    municipality     text NOT NULL,
    referring_party  text NOT NULL,
    referred_at      timestamptz NOT NULL,
    -- the team's queue order: first come (to this service, under the team's lock), first served
    queue_seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- queued: waiting or on an agenda; on_hold: off the agenda until consent is given again;
    -- consulted / not_consulted / closed: out of the queue
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'on_hold', 'consulted', 'not_consulted', 'closed')),
    meeting_id       text REFERENCES meetings,
    postponements    int NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX cases_team_queue ON cases (team_id, queue_seq) WHERE status = 'queued';
CREATE INDEX cases_meeting ON cases (meeting_id) WHERE meeting_id IS NOT NULL;

CREATE TABLE consultations (
    case_ref     text PRIMARY KEY REFERENCES cases,
    meeting_id   text NOT NULL REFERENCES meetings,
    outcome      text NOT NULL CHECK (outcome IN ('held', 'not_consulted')),
    record       jsonb NOT NULL,       -- the recorded fields, as published (codes and dates)
    recorded_by  text NOT NULL,
    recorded_at  timestamptz NOT NULL
);

-- Cases queued by the walking skeleton keep their place.
INSERT INTO cases (case_ref, team_id, municipality, referring_party, referred_at, updated_at)
SELECT case_ref, team_id, '', referring_party, queued_since, queued_since FROM case_queue
ORDER BY queued_since, case_ref;
DROP TABLE case_queue;
