-- The units an accusation (检举控告) names, per clock: the ladder never addresses a 督办 to
-- a unit of their own government (it would tell the accused of the accusation).
ALTER TABLE clock ADD COLUMN IF NOT EXISTS accused text[] NOT NULL DEFAULT '{}';
