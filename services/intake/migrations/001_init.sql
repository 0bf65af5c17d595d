-- Intake owns the petitions as received, the petitioners' contact details (the only place
-- personal data lives), idempotency keys, and the read model behind GET.
CREATE TABLE petition (
    id               text PRIMARY KEY,
    tracking_code    text        NOT NULL UNIQUE,
    title            text        NOT NULL,
    content          text        NOT NULL,
    channel          text        NOT NULL,
    kind             text,
    location         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    persons          integer     NOT NULL DEFAULT 1,
    petitioner_key   text,
    received_at      timestamptz NOT NULL,
    submitted_at     timestamptz NOT NULL DEFAULT now(),
    -- read model, maintained from the lifecycle topics
    status           text        NOT NULL DEFAULT 'submitted',
    category         text,
    department_code  text,
    department_name  text,
    assignment_no    integer     NOT NULL DEFAULT 0,
    jurisdiction     jsonb,
    priority         text,
    rule             text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX petition_department ON petition (department_code, status);

CREATE TABLE petitioner_contact (
    petition_id  text PRIMARY KEY REFERENCES petition (id),
    name         text,
    phone        text,
    id_number    text
);

CREATE TABLE idempotency_key (
    key           text PRIMARY KEY,
    request_hash  text        NOT NULL,
    petition_id   text        NOT NULL REFERENCES petition (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deadline (
    petition_id      text        NOT NULL REFERENCES petition (id),
    clock            text        NOT NULL,
    due_at           timestamptz NOT NULL,
    state            text        NOT NULL,
    department_code  text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (petition_id, clock)
);

CREATE TABLE timeline (
    id           bigserial PRIMARY KEY,
    petition_id  text        NOT NULL REFERENCES petition (id),
    at           timestamptz NOT NULL,
    event        text        NOT NULL,
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    event_id     uuid        UNIQUE
);
CREATE INDEX timeline_petition ON timeline (petition_id, at, id);
