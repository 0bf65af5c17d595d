-- The channels beyond the JSON API: Open311 clients (their API keys) and the mailbox, and what
-- they add to a petition. The key itself is shown once, when issued; only its SHA-256 is kept.
CREATE TABLE api_client (
    name        text PRIMARY KEY,
    key_hash    text        NOT NULL UNIQUE,
    channel     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- the Open311 client (or the mailbox) that brought the petition, the service it was filed
-- under, where the problem is and a picture of it
ALTER TABLE petition ADD COLUMN client text;
ALTER TABLE petition ADD COLUMN service_code text;
ALTER TABLE petition ADD COLUMN lat double precision;
ALTER TABLE petition ADD COLUMN long double precision;
ALTER TABLE petition ADD COLUMN media_url text;
-- GET requests reads a window of received dates, newest first
CREATE INDEX petition_received ON petition (received_at DESC);

ALTER TABLE petitioner_contact ADD COLUMN email text;
