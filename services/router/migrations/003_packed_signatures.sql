-- Repeat signatures as packed 64-bit bigram codes (domain/repeats.py: pack/unpack) instead of
-- text[] of bigrams: one bytea per row is a fraction of the bytes and of the encoding work.
-- Rows written before keep their text[] until they age out of the 90-day window; the router
-- reads whichever of the two a row has.
ALTER TABLE petition_index ADD COLUMN bigrams bytea;
ALTER TABLE petition_index ALTER COLUMN signature DROP NOT NULL;
ALTER TABLE petition_index ADD CONSTRAINT petition_index_has_signature
    CHECK (bigrams IS NOT NULL OR signature IS NOT NULL);
