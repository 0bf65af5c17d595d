-- Clocks per petition and the durable timers that drive warnings and breaches.
CREATE TABLE clock (
    petition_id       text        NOT NULL,
    clock             text        NOT NULL,
    policy            text        NOT NULL,
    department_code   text        NOT NULL,
    assignment_no     integer     NOT NULL,
    started_at        timestamptz NOT NULL,
    due_at            timestamptz NOT NULL,
    state             text        NOT NULL,
    calendar_missing  boolean     NOT NULL DEFAULT false,
    stopped_at        timestamptz,
    stop_reason       text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (petition_id, clock)
);
CREATE INDEX clock_open_by_department ON clock (department_code) WHERE state IN ('running', 'warned', 'breached');

CREATE TABLE timer (
    id                bigserial PRIMARY KEY,
    petition_id       text             NOT NULL,
    clock             text             NOT NULL,
    kind              text             NOT NULL,
    fraction          double precision NOT NULL,
    clock_due_at      timestamptz      NOT NULL,
    fire_at           timestamptz      NOT NULL,
    state             text             NOT NULL DEFAULT 'pending',
    fired_at          timestamptz,
    lateness_seconds  double precision
);
CREATE INDEX timer_pending ON timer (fire_at) WHERE state = 'pending';
CREATE INDEX timer_by_clock ON timer (petition_id, clock) WHERE state = 'pending';
