-- People's accounts for the console (role and scope as a token carries them, an Argon2 hash of
-- the password, the lock-out state) and their sessions (only a hash of the cookie's secret is
-- kept, so a copy of the table signs nobody in).

CREATE TABLE IF NOT EXISTS console_user (
    username       text        PRIMARY KEY,
    password_hash  text        NOT NULL,
    role           text        NOT NULL,
    departments    text[]      NOT NULL DEFAULT '{}',
    area           text,
    failed_logins  integer     NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS console_session (
    secret_hash  bytea       PRIMARY KEY,
    username     text        NOT NULL REFERENCES console_user (username) ON DELETE CASCADE,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS console_session_expiry ON console_session (expires_at);
CREATE INDEX IF NOT EXISTS console_session_user ON console_session (username);
