-- Identity and access: who took a petition in, every department it was assigned to (the
-- departments that may see it), and the append-only audit log of contact reveals.

ALTER TABLE petition ADD COLUMN IF NOT EXISTS submitted_by text;
ALTER TABLE petition ADD COLUMN IF NOT EXISTS submitted_by_role text;

-- every department a petition was ever assigned to (current and former holders), recorded by
-- the read model from petition.routed
CREATE TABLE IF NOT EXISTS petition_assignment (
    petition_id        text        NOT NULL REFERENCES petition (id),
    department_code    text        NOT NULL,
    first_assigned_at  timestamptz NOT NULL,
    PRIMARY KEY (petition_id, department_code)
);
CREATE INDEX IF NOT EXISTS petition_assignment_department ON petition_assignment (department_code, petition_id);
INSERT INTO petition_assignment (petition_id, department_code, first_assigned_at)
    SELECT id, department_code, updated_at FROM petition WHERE department_code IS NOT NULL
    ON CONFLICT DO NOTHING;

-- who saw whose contacts, when and why: one row per reveal, never changed, never removed
CREATE TABLE IF NOT EXISTS audit_log (
    id           bigserial   PRIMARY KEY,
    at           timestamptz NOT NULL,
    subject      text        NOT NULL,
    role         text        NOT NULL,
    action       text        NOT NULL,
    petition_id  text        NOT NULL REFERENCES petition (id),
    reason       text        NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_petition ON audit_log (petition_id, id);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
