-- Extension requests (延期) are tracked so a supervisor can only decide a pending one, and
-- the status a paused petition returns to.
ALTER TABLE petition ADD COLUMN extension_state text;
ALTER TABLE petition ADD COLUMN status_before_pause text;
