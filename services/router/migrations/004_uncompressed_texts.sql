-- Petition texts and packed repeat signatures are stored uncompressed: pglz saves under a
-- fifth of the space on these (mostly Chinese texts, sorted integers) and doubles the CPU of
-- writing a long one, on every petition, and of reading it back for every repeat check.
-- Existing rows keep their storage; new ones are written out of line, uncompressed.
ALTER TABLE assignment ALTER COLUMN title SET STORAGE EXTERNAL;
ALTER TABLE assignment ALTER COLUMN content SET STORAGE EXTERNAL;
ALTER TABLE petition_index ALTER COLUMN bigrams SET STORAGE EXTERNAL;
