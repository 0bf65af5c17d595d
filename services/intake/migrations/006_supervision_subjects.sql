-- 督办 read model: orders about a missing zero report (no petition), and orders opened
-- because an earlier 督办 lapsed (parent_id).
ALTER TABLE supervision ALTER COLUMN petition_id DROP NOT NULL;
ALTER TABLE supervision ALTER COLUMN clock DROP NOT NULL;
ALTER TABLE supervision ADD COLUMN subject       text NOT NULL DEFAULT 'petition';  -- petition | zero_report
ALTER TABLE supervision ADD COLUMN report_unit   text;
ALTER TABLE supervision ADD COLUMN report_period text;
ALTER TABLE supervision ADD COLUMN parent_id     uuid;
ALTER TABLE supervision ADD COLUMN overdue_at    timestamptz;
CREATE INDEX supervision_by_report ON supervision (report_unit, report_period) WHERE subject = 'zero_report';
