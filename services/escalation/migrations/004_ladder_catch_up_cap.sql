-- Hardening: a ladder found due late fires once for the steps it missed; a cap on open 督办.

-- What firing a timer did: event (published), stale (its clock had moved on), superseded (a
-- warning found due after its deadline: no warning), capped (a ladder step of a petition at
-- its open-督办 cap: no 督办), unknown. NULL on rows fired before this migration.
ALTER TABLE timer ADD COLUMN outcome       text;
-- ladder steps the firing stood for without firing them one by one (0: on time)
ALTER TABLE timer ADD COLUMN missed_steps  integer NOT NULL DEFAULT 0;
-- the same on the 督办 the step opened (its `step` is the one reached; the missed ones are
-- step - missed_steps .. step - 1)
ALTER TABLE supervision ADD COLUMN missed_steps integer NOT NULL DEFAULT 0;
