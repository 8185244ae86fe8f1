-- Who recorded a consent change: the signed-in person (HTTP) or the agency system's broker user
-- (AMQP), beside the party they act for. Older rows: unknown (NULL).
ALTER TABLE consent_history ADD COLUMN recorded_by_user text;
