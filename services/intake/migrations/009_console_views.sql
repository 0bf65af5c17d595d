-- The console's lists at 100,000 petitions: a supervisor's clocks at risk (few rows are warned
-- or breached at a time) and a department's queue by holder and status (001's index).
CREATE INDEX IF NOT EXISTS deadline_at_risk ON deadline (due_at) WHERE state IN ('warned', 'breached');
CREATE INDEX IF NOT EXISTS supervision_open_by_due ON supervision (due_at) WHERE state = 'open';

-- the classifier's confidence in a petition's category (the triage desk weighs it)
ALTER TABLE petition ADD COLUMN IF NOT EXISTS confidence real;

-- the operator desk finds a caller's petitions by the caller's pseudonym
CREATE INDEX IF NOT EXISTS petition_by_petitioner ON petition (petitioner_key, received_at)
    WHERE petitioner_key IS NOT NULL;
