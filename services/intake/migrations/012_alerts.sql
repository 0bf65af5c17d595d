-- Early warning (预警): the watch service's alerts as their highest version says (an older
-- version arriving late changes nothing), and the petitions it linked to an incident (并案),
-- with who took one out of it again (unlink).
CREATE TABLE alert (
    alert_id         text PRIMARY KEY,
    version          integer     NOT NULL,
    state            text        NOT NULL,  -- active, closed
    kind             text        NOT NULL,  -- surge, cluster
    -- the gazetteer area it is about (None: petitions the router could place nowhere)
    area             text,
    area_name        text,
    area_level       text,
    category         text,
    -- surges: the window's length (hour, day) and the surging window's start
    time_window      text,
    window_start     timestamptz,
    count            integer     NOT NULL,
    expected         double precision,
    z                double precision,
    petition_ids     text[]      NOT NULL DEFAULT '{}',
    opened_at        timestamptz NOT NULL,
    closed_at        timestamptz,
    level            integer     NOT NULL DEFAULT 1,
    risk_reasons     text[]      NOT NULL DEFAULT '{}',
    -- clusters: the department holding the incident
    department_code  text,
    -- the version's own time (the event's occurred_at)
    updated_at       timestamptz NOT NULL
);
-- a supervisor's list: the active alerts of its area, the riskiest and newest first
CREATE INDEX alert_active ON alert (level DESC, opened_at DESC) WHERE state = 'active';
CREATE INDEX alert_area ON alert (area, opened_at DESC);

-- No reference to the petition: a link may be read before the petition's routing is.
CREATE TABLE incident_link (
    petition_id      text        NOT NULL,
    incident_id      text        NOT NULL,
    alert_id         text        NOT NULL,
    department_code  text        NOT NULL,
    assignment_no    integer     NOT NULL,
    similarity       real,
    linked_at        timestamptz NOT NULL,
    unlinked_at      timestamptz,
    unlinked_by      text,   -- the person (principal subject)
    unlinked_unit    text,   -- in the name of which unit
    PRIMARY KEY (petition_id, incident_id)
);
-- an alert's listing leaves out the petitions unlinked from its incident
CREATE INDEX incident_link_unlinked ON incident_link (alert_id) WHERE unlinked_at IS NOT NULL;
