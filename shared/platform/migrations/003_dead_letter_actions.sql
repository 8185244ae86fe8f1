-- What operators did with this service's dead letters (tools/dead_letters.py): every replay and
-- discard, who did it, when and why. Append-only, like the access logs; it is also the count
-- (the service's /metrics reads it: trisam_dead_letter_actions).
CREATE TABLE dead_letter_actions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action           text NOT NULL CHECK (action IN ('replay', 'discard')),
    message_id       text NOT NULL,   -- the dead letter's id as the tool lists it (its message_id)
    event_type       text,
    case_ref         text,
    reason           text NOT NULL,   -- the dead-letter reason code
    detail           text NOT NULL,   -- the dead-letter detail (never personal data)
    dead_lettered_at timestamptz,
    who              text NOT NULL CHECK (length(btrim(who)) > 0),
    why              text NOT NULL CHECK (action <> 'discard' OR length(btrim(why)) > 0),
    acted_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_actions_message ON dead_letter_actions (message_id);

CREATE FUNCTION dead_letter_actions_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER dead_letter_actions_append_only BEFORE UPDATE OR DELETE ON dead_letter_actions
    FOR EACH ROW EXECUTE FUNCTION dead_letter_actions_refuse_change();
CREATE TRIGGER dead_letter_actions_no_truncate BEFORE TRUNCATE ON dead_letter_actions
    FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_actions_refuse_change();
