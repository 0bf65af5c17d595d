-- 督办 for missing zero reports (no petition) and for 督办 whose own deadline passed.
ALTER TABLE supervision ALTER COLUMN petition_id DROP NOT NULL;
ALTER TABLE supervision ALTER COLUMN clock DROP NOT NULL;
-- what the 督办 is about: a petition's clock, or a unit's missing zero report
ALTER TABLE supervision ADD COLUMN subject       text NOT NULL DEFAULT 'petition';  -- petition | zero_report
ALTER TABLE supervision ADD COLUMN report_unit   text;
ALTER TABLE supervision ADD COLUMN report_period text;
-- the lapsed 督办 this one escalates (level 'overdue'), and when this one lapsed
ALTER TABLE supervision ADD COLUMN parent_id     uuid;
ALTER TABLE supervision ADD COLUMN overdue_at    timestamptz;
-- the due query of the overdue poller: open 督办 not yet found overdue, by due time
CREATE INDEX supervision_due ON supervision (due_at) WHERE state = 'open' AND overdue_at IS NULL;
CREATE INDEX supervision_by_report ON supervision (report_unit, report_period) WHERE subject = 'zero_report';
-- the 三率 window (clocks started in the last N days)
CREATE INDEX clock_by_start ON clock (started_at);
