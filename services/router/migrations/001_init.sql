-- The router's current assignment of every petition it has seen, and its decision log.
CREATE TABLE assignment (
    petition_id        text PRIMARY KEY,
    tracking_code      text        NOT NULL,
    assignment_no      integer     NOT NULL,
    department_code    text        NOT NULL,
    category           text,
    confidence         double precision,
    jurisdiction_code  text,
    rule               text        NOT NULL,
    returned_by        text[]      NOT NULL DEFAULT '{}',
    kind               text,
    channel            text        NOT NULL,
    priority           text        NOT NULL,
    petitioner_key     text,
    persons            integer     NOT NULL DEFAULT 1,
    title              text        NOT NULL,
    content            text        NOT NULL,
    location           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    received_at        timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE decision_log (
    petition_id        text        NOT NULL,
    assignment_no      integer     NOT NULL,
    department_code    text        NOT NULL,
    rule               text        NOT NULL,
    category           text,
    confidence         double precision,
    jurisdiction_code  text,
    table_version      text        NOT NULL,
    decided_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (petition_id, assignment_no)
);
