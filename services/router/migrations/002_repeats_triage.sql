-- Repeat detection index (per pseudonymous petitioner), accusations, triage decisions.
ALTER TABLE assignment ADD COLUMN accused text[] NOT NULL DEFAULT '{}';
ALTER TABLE assignment ADD COLUMN repeat_of text;
ALTER TABLE assignment ADD COLUMN group_petition boolean NOT NULL DEFAULT false;

CREATE TABLE petition_index (
    petition_id     text PRIMARY KEY,
    petitioner_key  text        NOT NULL,
    received_at     timestamptz NOT NULL,
    signature       text[]      NOT NULL
);
CREATE INDEX petition_index_by_person ON petition_index (petitioner_key, received_at);

-- What the triage desk decided: exportable as new training data.
CREATE TABLE triage_decision (
    petition_id          text        NOT NULL,
    assignment_no        integer     NOT NULL,
    title                text        NOT NULL,
    content              text        NOT NULL,
    predicted_category   text,
    predicted_confidence double precision,
    decided_category     text,
    department_code      text        NOT NULL,
    decided_by           text        NOT NULL,
    note                 text        NOT NULL DEFAULT '',
    decided_at           timestamptz NOT NULL,
    PRIMARY KEY (petition_id, assignment_no)
);
