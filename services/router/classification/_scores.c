/* One view-field's linear scores for a batch of texts, in one pass per text.
 *
 * The same arithmetic as the numpy path of model.py (_View._ids, _PairTable.terms and
 * _Field.rows followed by the product with the coefficients), without the batch-wide
 * temporary arrays: for each text, the characters' ids (digit runs folded to one '0' when
 * asked), its 1-, 2- and 3-grams looked up in the view's tables, the counts of the field's
 * terms, the sublinear tf-idf row L2-normalised, and its dot product with every class's
 * coefficients, added (times the field's weight) to the text's scores.
 *
 * Built by native.py with the system C compiler and loaded through ctypes; it reads the
 * model's arrays in place and writes only `scores` and `sq_norm`. Returns 0, or -1 when it
 * cannot allocate its buffers (the caller then uses the numpy path).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define ID_BITS 15
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define SMALL_COUNTS 256
#define PREFETCH 16 /* positions (or terms) ahead; measured: 8-32 alike, 4 worse */

/* 1 + log(n) for the counts most terms have, computed once */
static double sublinear[SMALL_COUNTS];
static int sublinear_ready = 0;

static double tf(int32_t n) {
    return n < SMALL_COUNTS ? sublinear[n] : 1.0 + log((double)n);
}

/* A field's 2-grams and 3-gram prefixes, by the pair of character ids (a * n_ids + b, below
 * 2^32): an open-addressing table of 64-bit slots, the pair in the high half and, in the
 * low half, bit 31 set when the pair begins one of the field's 3-gram terms and bits 0-30
 * the 2-gram's position in the field's vocabulary + 1 (0: the pair is no term of it).
 * Empty slots are all ones. At most a MB, where the direct table of every pair (model.py)
 * is tens of MB; lookups are prefetched a few positions ahead all the same. */
#define EMPTY_SLOT (~(uint64_t)0)

static uint32_t pair_entry(uint32_t pair, const uint64_t *table, int bits) {
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    uint64_t s = ((uint64_t)pair * GOLDEN) >> (64 - bits);
    for (;;) {
        uint64_t e = table[s];
        if (e == EMPTY_SLOT) return 0;
        if ((uint32_t)(e >> 32) == pair) return (uint32_t)e;
        s = (s + 1) & mask;
    }
}

/* Fill `table` (2^bits slots, all ones) with n pairs; returns 0, or -1 if it is full. */
int build_pair_table(const uint32_t *pairs, const uint32_t *entries, int64_t n, uint64_t *table, int bits) {
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    if ((uint64_t)n > mask) return -1;
    for (int64_t i = 0; i < n; i++) {
        uint64_t s = ((uint64_t)pairs[i] * GOLDEN) >> (64 - bits);
        while (table[s] != EMPTY_SLOT) s = (s + 1) & mask;
        table[s] = ((uint64_t)pairs[i] << 32) | entries[i];
    }
    return 0;
}

static int32_t triple_lookup(int64_t key, const int64_t *keys, const int64_t *pos, uint64_t mask, int shift) {
    uint64_t s = ((uint64_t)key * GOLDEN) >> shift;
    for (;;) {
        int64_t found = keys[s];
        if (found == key) return (int32_t)pos[s];
        if (found == -1) return -1;
        s = (s + 1) & mask;
    }
}

int field_scores(
    /* the texts: code points, joined, and where each text starts (n_docs + 1 offsets) */
    const uint32_t *cps, const int64_t *offsets, int64_t n_docs,
    /* digit folding: 1 to fold, with a table of which BMP code points are decimal digits
       (the caller checked that no code point is outside the BMP) */
    int fold_digits, const uint8_t *decimal_bmp, int32_t zero_id,
    /* character table: id of a code point (0: not in the table) */
    const int32_t *char_id, int64_t char_id_len,
    /* the field's terms: 1-grams by character id (position in the field's vocabulary or -1;
       NULL: no 1-grams), the pair table above, and the view's 3-grams (see _PairTable:
       the union's KeyIndex, its union term numbers, and union number -> position in this
       field's vocabulary or -1) */
    int64_t n_ids, const int32_t *single, const uint64_t *pairs, int pair_bits,
    const int64_t *tri_keys, const int64_t *tri_pos, uint64_t tri_mask, int tri_shift,
    const int32_t *tri_number, const int32_t *to_field,
    /* the field: one row of k + 1 doubles per term, its idf then idf * its coefficients
       (one cache line for k = 7: a term's whole share is one memory read), and its weight */
    const double *lines, int64_t n_feat, int64_t k, double weight,
    /* out, accumulated: scores (n_docs x k) and each text's squared norm of field weights */
    double *scores, double *sq_norm)
{
    int64_t longest = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        int64_t len = offsets[d + 1] - offsets[d];
        if (len > longest) longest = len;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(longest + 1));
    int32_t *seen = calloc((size_t)(n_feat + 1), sizeof(int32_t)); /* text number + 1 */
    int32_t *count = malloc(sizeof(int32_t) * (size_t)(n_feat + 1));
    int32_t *unique = malloc(sizeof(int32_t) * (size_t)(3 * longest + 1));
    double *acc = malloc(sizeof(double) * (size_t)(k + 1));
    if (!ids || !seen || !count || !unique || !acc) {
        free(ids); free(seen); free(count); free(unique); free(acc);
        return -1;
    }
    if (!sublinear_ready) { /* the same value whichever thread gets here first */
        for (int32_t n = 1; n < SMALL_COUNTS; n++) sublinear[n] = 1.0 + log((double)n);
        sublinear_ready = 1;
    }
    for (int64_t d = 0; d < n_docs; d++) {
        const int32_t stamp = (int32_t)(d + 1);
        int64_t m = 0, u = 0;
        int previous_digit = 0;
        for (int64_t p = offsets[d]; p < offsets[d + 1]; p++) {
            uint32_t c = cps[p];
            if (fold_digits && decimal_bmp[c]) {
                if (previous_digit) continue; /* a run of digits keeps its first, as '0' */
                previous_digit = 1;
                ids[m++] = zero_id;
                continue;
            }
            previous_digit = 0;
            ids[m++] = (int64_t)c < char_id_len ? char_id[c] : 0;
        }

#define COUNT_TERM(col)                                      \
    do {                                                     \
        int32_t col_ = (col);                                \
        if (col_ >= 0) {                                     \
            if (seen[col_] != stamp) {                       \
                seen[col_] = stamp;                          \
                count[col_] = 1;                             \
                unique[u++] = col_;                          \
            } else {                                         \
                count[col_]++;                               \
            }                                                \
        }                                                    \
    } while (0)

        for (int64_t i = 0; i < m; i++) {
            int64_t a = ids[i];
            if (i + PREFETCH + 1 < m) { /* a table this size misses the cache: ask early */
                uint64_t ahead = (uint64_t)(ids[i + PREFETCH] * n_ids + ids[i + PREFETCH + 1]);
                __builtin_prefetch(&pairs[(ahead * GOLDEN) >> (64 - pair_bits)]);
            }
            if (single != NULL) COUNT_TERM(single[a]);
            if (i + 1 < m && a > 0 && ids[i + 1] > 0) { /* a pair with an unknown character is no term */
                uint32_t entry = pair_entry((uint32_t)(a * n_ids + ids[i + 1]), pairs, pair_bits);
                COUNT_TERM((int32_t)(entry & 0x7FFFFFFF) - 1);
                if ((entry >> 31) && i + 2 < m && ids[i + 2] > 0) {
                    int64_t key = ((int64_t)3 << 60) | (a << (ID_BITS * 3)) | ((int64_t)ids[i + 1] << (ID_BITS * 2))
                                  | ((int64_t)ids[i + 2] << ID_BITS);
                    int32_t at3 = triple_lookup(key, tri_keys, tri_pos, tri_mask, tri_shift);
                    if (at3 >= 0) COUNT_TERM(to_field[tri_number[at3]]);
                }
            }
        }
#undef COUNT_TERM
        if (u == 0) continue;
        /* row / |row| . coef = (sum of tf * idf * coef) / sqrt(sum of (tf * idf)^2) */
        double sumsq = 0.0;
        for (int64_t c = 0; c < k; c++) acc[c] = 0.0;
        for (int64_t j = 0; j < u; j++) {
            int32_t col = unique[j];
            const double *line = lines + (int64_t)col * (k + 1);
            if (j + PREFETCH < u) __builtin_prefetch(lines + (int64_t)unique[j + PREFETCH] * (k + 1));
            double t = tf(count[col]);
            double v = t * line[0];
            sumsq += v * v;
            for (int64_t c = 0; c < k; c++) acc[c] += t * line[1 + c];
        }
        double scale = weight / sqrt(sumsq);
        for (int64_t c = 0; c < k; c++) scores[d * k + c] += scale * acc[c];
        sq_norm[d] += weight * weight;
    }
    free(ids); free(seen); free(count); free(unique); free(acc);
    return 0;
}
