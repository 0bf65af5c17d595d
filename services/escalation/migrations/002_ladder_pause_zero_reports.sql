-- Issue 4: the escalation ladder and 督办, pause / resume / extension, zero reports.

-- Clocks: pause bookkeeping and the one extension.
ALTER TABLE clock ADD COLUMN paused_at          timestamptz;
ALTER TABLE clock ADD COLUMN remaining_seconds  double precision;
ALTER TABLE clock ADD COLUMN paused_seconds     double precision NOT NULL DEFAULT 0;
ALTER TABLE clock ADD COLUMN extended_days      integer;
ALTER TABLE clock ADD COLUMN extension_requested_days integer;
ALTER TABLE clock ADD COLUMN jurisdiction       jsonb;
ALTER TABLE clock ADD COLUMN warned_fractions   double precision[] NOT NULL DEFAULT '{}';

-- Timers: ladder steps ('escalate' timers carry their step), who fired them.
ALTER TABLE timer ADD COLUMN step      integer;
ALTER TABLE timer ADD COLUMN fired_by  text;
-- The due query (state = 'pending' AND fire_at <= now ORDER BY fire_at) is served by the
-- partial index timer_pending (fire_at) WHERE state = 'pending' from 001; keep it lean.

-- 督办 (supervision orders): one per ladder step.
CREATE TABLE supervision (
    id               uuid PRIMARY KEY,
    petition_id      text        NOT NULL,
    clock            text        NOT NULL,
    step             integer     NOT NULL,
    level            text        NOT NULL,
    target_unit      text        NOT NULL,
    supervised_unit  text        NOT NULL,
    rule             text        NOT NULL,
    opened_at        timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    state            text        NOT NULL DEFAULT 'open',
    closed_at        timestamptz,
    closed_by        text,
    close_note       text
);
CREATE INDEX supervision_open_by_unit ON supervision (target_unit) WHERE state = 'open';
CREATE INDEX supervision_by_petition ON supervision (petition_id);

-- Zero reports: one row per (unit, period) once submitted or evaluated; the unique key is
-- what keeps several instances from publishing a period's verdict twice.
CREATE TABLE zero_report_period (
    unit           text        NOT NULL,
    period         text        NOT NULL,
    status         text        NOT NULL,          -- on_time | late | missing | unscheduled
    rule           text        NOT NULL,
    due_at         timestamptz,
    closes_at      timestamptz,
    submitted_at   timestamptz,
    incidents      integer     NOT NULL DEFAULT 0,
    escalated_to   text,
    submission_id  uuid,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit, period)
);
-- Per unit: the instant up to which closed periods were evaluated (catch-up after downtime).
CREATE TABLE zero_report_cursor (
    unit             text PRIMARY KEY,
    evaluated_until  timestamptz NOT NULL
);
