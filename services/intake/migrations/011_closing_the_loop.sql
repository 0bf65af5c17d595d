-- Closing the loop: follow-up calls (回访), reopenings (重办), the 三率 projection and the
-- public board (晒单).
ALTER TABLE petition ADD COLUMN follow_up_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE petition ADD COLUMN reopen_count integer NOT NULL DEFAULT 0;
-- the latest resolution: when, by which department, on what basis; whether the case may be
-- shown on the public board (a department may withhold one)
ALTER TABLE petition ADD COLUMN resolved_at timestamptz;
ALTER TABLE petition ADD COLUMN resolved_by text;
ALTER TABLE petition ADD COLUMN basis text;
ALTER TABLE petition ADD COLUMN public boolean NOT NULL DEFAULT true;
CREATE INDEX petition_resolved ON petition (resolved_at DESC) WHERE resolved_at IS NOT NULL;

-- The 三率 projection: one row of counters per department and local day, incremented by the
-- events that count (each event once: kpi_fact remembers which were counted).
CREATE TABLE kpi_fact (
    event_id  uuid NOT NULL,
    field     text NOT NULL,
    PRIMARY KEY (event_id, field)
);
CREATE TABLE kpi_daily (
    department_code      text    NOT NULL,
    day                  date    NOT NULL,
    assignments          integer NOT NULL DEFAULT 0,
    signed_in_time       integer NOT NULL DEFAULT 0,
    follow_ups           integer NOT NULL DEFAULT 0,
    rated_resolved       integer NOT NULL DEFAULT 0,
    satisfied            integer NOT NULL DEFAULT 0,
    basically_satisfied  integer NOT NULL DEFAULT 0,
    unsatisfied          integer NOT NULL DEFAULT 0,
    unreachable          integer NOT NULL DEFAULT 0,
    reopened             integer NOT NULL DEFAULT 0,
    -- resolutions, and those within the resolution clock (the board's on-time share)
    resolutions          integer NOT NULL DEFAULT 0,
    resolved_in_time     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (department_code, day)
);
CREATE INDEX kpi_daily_day ON kpi_daily (day);
-- the day each department got each petition (a sign-for counts on its assignment's day)
CREATE TABLE kpi_assignment (
    petition_id      text NOT NULL,
    department_code  text NOT NULL,
    day              date NOT NULL,
    PRIMARY KEY (petition_id, department_code)
);
