-- Issue 4 read model: 督办 (supervision orders) from petition.sla, zero-report submissions
-- (intake is their single writer) and verdicts from zero_report.status.
CREATE TABLE supervision (
    id                 uuid PRIMARY KEY,
    petition_id        text        NOT NULL,
    clock              text        NOT NULL,
    step               integer     NOT NULL,
    level              text        NOT NULL,
    target_unit        text        NOT NULL,
    supervised_unit    text        NOT NULL,
    rule               text        NOT NULL,
    opened_at          timestamptz NOT NULL,
    due_at             timestamptz NOT NULL,
    state              text        NOT NULL DEFAULT 'open',   -- open | closed
    close_requested_by text,
    close_requested_at timestamptz,
    closed_by          text,
    closed_at          timestamptz,
    close_note         text
);
CREATE INDEX supervision_open_by_target ON supervision (target_unit, opened_at) WHERE state = 'open';
CREATE INDEX supervision_by_petition ON supervision (petition_id);

CREATE TABLE zero_report_submission (
    unit           text        NOT NULL,
    period         text        NOT NULL,
    submission_id  uuid        NOT NULL UNIQUE,
    incidents      jsonb       NOT NULL,
    request_hash   text        NOT NULL,
    submitted_at   timestamptz NOT NULL,
    PRIMARY KEY (unit, period)
);

CREATE TABLE zero_report_status (
    unit          text        NOT NULL,
    period        text        NOT NULL,
    status        text        NOT NULL,
    rule          text        NOT NULL,
    due_at        timestamptz,
    submitted_at  timestamptz,
    incidents     integer     NOT NULL DEFAULT 0,
    escalated_to  text,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (unit, period)
);
