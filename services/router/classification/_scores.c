/* The classifier's compiled scoring kernel: one view-field's linear scores for a batch of
 * texts, text by text.
 *
 * The same arithmetic as the numpy path of model.py (_View.terms, KeyIndex.lookup and
 * _Field.rows, then the product with the coefficients), without its batch-wide temporary
 * arrays: for each text, the characters' ids (digit runs folded to one '0' when asked), its
 * 1-, 2- and 3-grams looked up in the field's vocabulary, the counts of its terms, the
 * sublinear tf-idf row L2-normalised, and its dot product with every class's coefficients,
 * added (times the field's weight) to the text's scores.
 *
 * A CPython extension module, built by setup.py when the package is installed. What must
 * hold: no call from Python can make it read or write out of bounds. FieldScorer() takes
 * the artefact's own arrays (character table, the field's sorted term keys, idf,
 * coefficients) by keyword, checks their element types, dimensions, lengths and values, and
 * builds every table the loop indexes itself; add_scores() takes str texts and the two
 * output arrays, checked the same way. A wrong call raises TypeError or ValueError.
 * Every call holds the GIL throughout: the scorer's term counters are shared by its calls
 * (all zero between texts).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define ID_BITS 15
#define MAX_CHARS ((1 << ID_BITS) - 1)  /* ids 1..MAX_CHARS; 0: not in the table */
#define LENGTH_SHIFT 60                 /* a key: length << 60 | ids, 15 bits each, first highest */
#define MAX_CODE_POINT 0x10FFFF
#define GOLDEN 0x9E3779B97F4A7C15ULL    /* 2**64 / golden ratio: Fibonacci hashing */
#define SMALL_COUNTS 256
#define PREFETCH 16 /* positions (or terms) ahead; measured: 8-32 alike, 4 worse */

#if defined(__GNUC__)
#define PREFETCH_AT(address) __builtin_prefetch(address)
#else
#define PREFETCH_AT(address) ((void)0)
#endif

/* 1 + log(n) for the counts most terms have, filled when the module is imported */
static double sublinear[SMALL_COUNTS];

static double tf(int32_t n) {
    return n < SMALL_COUNTS ? sublinear[n] : 1.0 + log((double)n);
}

/* ------------------------------------------------------------------ argument checks */

/* Whether a buffer's struct-module format is one item of `kind` ('i': signed integer, 'f':
   floating point) in this machine's byte order; the item size is checked by the caller. */
static int format_is(const char *format, char kind) {
    if (format == NULL) format = "B";
    switch (*format) {
    case '@': case '=': format++; break;
#if PY_LITTLE_ENDIAN
    case '<': format++; break;
#else
    case '>': case '!': format++; break;
#endif
    default: break;
    }
    if (format[0] == '\0' || format[1] != '\0') return 0;
    return kind == 'i' ? strchr("bhilq", format[0]) != NULL : format[0] == 'd';
}

/* `obj`'s buffer as a C-contiguous array of `ndim` dimensions of 8-byte items of `kind`
   (int64 or float64), writable when asked. 0, or -1 with TypeError (not a buffer, another
   element type) or ValueError (dimensions, layout, read-only) naming `name`. */
static int get_array(PyObject *obj, const char *name, char kind, int ndim, int writable, Py_buffer *view) {
    const char *type_name = kind == 'i' ? "int64" : "float64";
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %s array, not %.100s", name, type_name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO) < 0) return -1;
    if (view->itemsize != 8 || !format_is(view->format, kind)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %s array, got items of format '%s' (%zd bytes)", name,
                     type_name, view->format ? view->format : "B", view->itemsize);
    } else if (view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimension(s), got %d", name, ndim, view->ndim);
    } else if (!PyBuffer_IsContiguous(view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous", name);
    } else if (writable && view->readonly) {
        PyErr_Format(PyExc_ValueError, "%s must be writable", name);
    } else {
        return 0;
    }
    PyBuffer_Release(view);
    return -1;
}

static Py_ssize_t shape(const Py_buffer *view, int dimension) {
    return view->shape != NULL ? view->shape[dimension] : view->len / view->itemsize;
}

/* ------------------------------------------------------------------ the scorer */

/* A field's 2-grams and 3-gram prefixes, by the pair of character ids (a * n_ids + b, below
 * 2^30): an open-addressing table of 64-bit slots, the pair in the high half and, in the low
 * half, bit 31 set when the pair begins one of the field's 3-gram terms and bits 0-30 the
 * 2-gram's column + 1 (0: the pair is no term of the field). Empty slots are all ones; the
 * table is at most a third full. */
#define EMPTY_PAIR (~(uint64_t)0)
#define BEGINS_TRIPLE ((uint64_t)1 << 31)

typedef struct {
    PyObject_HEAD
    int32_t *char_id;       /* code point -> id; char_id_len entries */
    Py_ssize_t char_id_len;
    int64_t n_ids;          /* ids are below it */
    int32_t zero_id;        /* the id of '0' (digit runs fold to it), 0 if not in the table */
    int fold_digits;
    int32_t *single;        /* id -> column of the 1-gram, or -1; NULL: the field has no 1-grams */
    uint64_t *pairs;        /* see above */
    int pair_bits;
    uint64_t *triple_keys;  /* the field's 3-gram keys by open addressing, 0: empty slot */
    int32_t *triple_cols;   /* and their columns */
    int triple_bits;
    double *lines;          /* per column: idf, then idf * each class's coefficient */
    Py_ssize_t n_terms;
    Py_ssize_t n_classes;
    double weight;
    int32_t *count;         /* per column: the term's count in the text being scored, else 0 */
} FieldScorer;

static int bits_for(Py_ssize_t n, int load) { /* table size for n entries at most 1/load full */
    int bits = 4;
    while (((Py_ssize_t)1 << bits) < n * load) bits++;
    return bits;
}

static uint64_t *pair_slot(uint64_t *table, int bits, uint32_t pair) {
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    uint64_t s = ((uint64_t)pair * GOLDEN) >> (64 - bits);
    while (table[s] != EMPTY_PAIR && (uint32_t)(table[s] >> 32) != pair) s = (s + 1) & mask;
    return &table[s];
}

static uint32_t pair_entry(const FieldScorer *f, uint32_t pair) {
    uint64_t mask = ((uint64_t)1 << f->pair_bits) - 1;
    uint64_t s = ((uint64_t)pair * GOLDEN) >> (64 - f->pair_bits);
    for (;;) {
        uint64_t e = f->pairs[s];
        if (e == EMPTY_PAIR) return 0;
        if ((uint32_t)(e >> 32) == pair) return (uint32_t)e;
        s = (s + 1) & mask;
    }
}

static int32_t triple_column(const FieldScorer *f, uint64_t key) {
    uint64_t mask = ((uint64_t)1 << f->triple_bits) - 1;
    uint64_t s = (key * GOLDEN) >> (64 - f->triple_bits);
    for (;;) {
        uint64_t found = f->triple_keys[s];
        if (found == key) return f->triple_cols[s];
        if (found == 0) return -1;
        s = (s + 1) & mask;
    }
}

static void scorer_free_tables(FieldScorer *f) {
    PyMem_Free(f->char_id); PyMem_Free(f->single); PyMem_Free(f->pairs); PyMem_Free(f->triple_keys);
    PyMem_Free(f->triple_cols); PyMem_Free(f->lines); PyMem_Free(f->count);
    f->char_id = NULL; f->single = NULL; f->pairs = NULL; f->triple_keys = NULL;
    f->triple_cols = NULL; f->lines = NULL; f->count = NULL;
}

static void scorer_dealloc(FieldScorer *f) {
    scorer_free_tables(f);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

/* The character table: code point -> id (position in `chars` + 1); -1 with ValueError for a
   code point outside Unicode, a repeated one, or too many. */
static int build_char_table(FieldScorer *f, const int64_t *chars, Py_ssize_t n) {
    if (n > MAX_CHARS) {
        PyErr_Format(PyExc_ValueError, "chars holds %zd characters, at most %d fit in a key", n, MAX_CHARS);
        return -1;
    }
    int64_t largest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (chars[i] < 0 || chars[i] > MAX_CODE_POINT) {
            PyErr_Format(PyExc_ValueError, "chars[%zd] = %lld is not a code point", i, (long long)chars[i]);
            return -1;
        }
        if (chars[i] > largest) largest = chars[i];
    }
    f->char_id_len = (Py_ssize_t)largest + 1;
    f->char_id = PyMem_Calloc((size_t)f->char_id_len, sizeof(int32_t));
    if (f->char_id == NULL) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (f->char_id[chars[i]] != 0) {
            PyErr_Format(PyExc_ValueError, "chars[%zd] = %lld repeats an earlier character", i, (long long)chars[i]);
            return -1;
        }
        f->char_id[chars[i]] = (int32_t)(i + 1);
    }
    f->n_ids = (int64_t)n + 1;
    f->zero_id = '0' < f->char_id_len ? f->char_id['0'] : 0;
    return 0;
}

/* The lookup tables of the field's terms; -1 with ValueError for keys that are not sorted
   and unique, or not 1-3-grams of ids in the character table. */
static int build_term_tables(FieldScorer *f, const int64_t *keys, Py_ssize_t n) {
    Py_ssize_t n_single = 0, n_pairs = 0, n_triples = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t key = keys[j];
        if (j > 0 && key <= keys[j - 1]) {
            PyErr_Format(PyExc_ValueError, "keys must be sorted and unique (keys[%zd])", j);
            return -1;
        }
        uint64_t bits = (uint64_t)key, length = bits >> LENGTH_SHIFT; /* a negative key: 8 or more */
        int valid = length >= 1 && length <= 3;
        uint64_t rebuilt = length << LENGTH_SHIFT;
        for (uint64_t p = 0; valid && p < length; p++) {
            uint64_t id = (bits >> (ID_BITS * (3 - p))) & MAX_CHARS;
            valid = id >= 1 && id < (uint64_t)f->n_ids;
            rebuilt |= id << (ID_BITS * (3 - p));
        }
        if (!valid || rebuilt != bits) {
            PyErr_Format(PyExc_ValueError,
                         "keys[%zd] = %lld is not a 1-3-gram of the character table's ids", j, (long long)key);
            return -1;
        }
        n_single += length == 1;
        n_pairs += length >= 2;
        n_triples += length == 3;
    }
    if (n_single) {
        f->single = PyMem_Malloc(sizeof(int32_t) * (size_t)f->n_ids);
        if (f->single == NULL) { PyErr_NoMemory(); return -1; }
        for (int64_t i = 0; i < f->n_ids; i++) f->single[i] = -1;
    }
    f->pair_bits = bits_for(n_pairs, 3);
    f->pairs = PyMem_Malloc(sizeof(uint64_t) << f->pair_bits);
    f->triple_bits = bits_for(n_triples, 4);
    f->triple_keys = PyMem_Calloc((size_t)1 << f->triple_bits, sizeof(uint64_t));
    f->triple_cols = PyMem_Calloc((size_t)1 << f->triple_bits, sizeof(int32_t));
    if (f->pairs == NULL || f->triple_keys == NULL || f->triple_cols == NULL) { PyErr_NoMemory(); return -1; }
    memset(f->pairs, 0xFF, sizeof(uint64_t) << f->pair_bits);
    uint64_t triple_mask = ((uint64_t)1 << f->triple_bits) - 1;
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t key = keys[j], length = key >> LENGTH_SHIFT;
        int64_t a = (key >> (ID_BITS * 3)) & MAX_CHARS, b = (key >> (ID_BITS * 2)) & MAX_CHARS;
        if (length == 1) {
            f->single[a] = (int32_t)j;
            continue;
        }
        uint32_t pair = (uint32_t)(a * f->n_ids + b);
        uint64_t *slot = pair_slot(f->pairs, f->pair_bits, pair);
        uint64_t entry = *slot == EMPTY_PAIR ? 0 : (uint32_t)*slot;
        entry |= length == 2 ? (uint64_t)(j + 1) : BEGINS_TRIPLE;
        *slot = ((uint64_t)pair << 32) | entry;
        if (length == 3) {
            uint64_t s = ((uint64_t)key * GOLDEN) >> (64 - f->triple_bits);
            while (f->triple_keys[s] != 0) s = (s + 1) & triple_mask;
            f->triple_keys[s] = (uint64_t)key;
            f->triple_cols[s] = (int32_t)j;
        }
    }
    return 0;
}

static PyObject *scorer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"chars", "keys", "idf", "coef", "weight", "fold_digits", NULL};
    PyObject *chars_obj = NULL, *keys_obj = NULL, *idf_obj = NULL, *coef_obj = NULL, *weight_obj = NULL;
    PyObject *fold_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOOO:FieldScorer", keywords, &chars_obj, &keys_obj,
                                     &idf_obj, &coef_obj, &weight_obj, &fold_obj)) {
        return NULL;
    }
    PyObject *given[] = {chars_obj, keys_obj, idf_obj, coef_obj, weight_obj, fold_obj};
    for (int i = 0; i < 6; i++) {
        if (given[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "FieldScorer() missing required keyword argument '%s'", keywords[i]);
            return NULL;
        }
    }
    if (!PyBool_Check(fold_obj)) {
        PyErr_Format(PyExc_TypeError, "fold_digits must be a bool, not %.100s", Py_TYPE(fold_obj)->tp_name);
        return NULL;
    }
    if (!PyFloat_Check(weight_obj) && !PyLong_Check(weight_obj)) {
        PyErr_Format(PyExc_TypeError, "weight must be a number, not %.100s", Py_TYPE(weight_obj)->tp_name);
        return NULL;
    }
    double weight = PyFloat_AsDouble(weight_obj);
    if (weight == -1.0 && PyErr_Occurred()) return NULL;
    if (!isfinite(weight)) {
        PyErr_SetString(PyExc_ValueError, "weight must be finite");
        return NULL;
    }

    Py_buffer chars = {0}, keys = {0}, idf = {0}, coef = {0};
    FieldScorer *f = NULL;
    if (get_array(chars_obj, "chars", 'i', 1, 0, &chars) < 0) goto fail;
    if (get_array(keys_obj, "keys", 'i', 1, 0, &keys) < 0) goto fail;
    if (get_array(idf_obj, "idf", 'f', 1, 0, &idf) < 0) goto fail;
    if (get_array(coef_obj, "coef", 'f', 2, 0, &coef) < 0) goto fail;
    Py_ssize_t n = shape(&keys, 0), k = shape(&coef, 1);
    if (shape(&idf, 0) != n || shape(&coef, 0) != n) {
        PyErr_Format(PyExc_ValueError, "keys, idf and coef must have one row per term: %zd, %zd and %zd", n,
                     shape(&idf, 0), shape(&coef, 0));
        goto fail;
    }
    if (k < 1 || n >= INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "coef must have 1 or more classes and under 2^31 terms, got %zd x %zd", n, k);
        goto fail;
    }

    f = (FieldScorer *)type->tp_alloc(type, 0); /* zeroed: every pointer NULL */
    if (f == NULL) goto fail;
    f->fold_digits = fold_obj == Py_True;
    f->weight = weight;
    f->n_terms = n;
    f->n_classes = k;
    if (build_char_table(f, chars.buf, shape(&chars, 0)) < 0) goto fail;
    if (build_term_tables(f, keys.buf, n) < 0) goto fail;
    f->lines = PyMem_Malloc(sizeof(double) * (size_t)(n * (k + 1) + 1));
    f->count = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    if (f->lines == NULL || f->count == NULL) { PyErr_NoMemory(); goto fail; }
    const double *idf_values = idf.buf, *coef_values = coef.buf;
    for (Py_ssize_t j = 0; j < n; j++) { /* one row of k + 1 doubles: a term's whole share in one read */
        double *line = f->lines + j * (k + 1);
        line[0] = idf_values[j];
        for (Py_ssize_t c = 0; c < k; c++) line[1 + c] = idf_values[j] * coef_values[j * k + c];
    }
    PyBuffer_Release(&chars); PyBuffer_Release(&keys); PyBuffer_Release(&idf); PyBuffer_Release(&coef);
    return (PyObject *)f;

fail:
    if (chars.obj) PyBuffer_Release(&chars);
    if (keys.obj) PyBuffer_Release(&keys);
    if (idf.obj) PyBuffer_Release(&idf);
    if (coef.obj) PyBuffer_Release(&coef);
    Py_XDECREF(f);
    return NULL;
}

/* The character ids of `text` into `ids` (digit runs folded when the field does); how many. */
static Py_ssize_t text_ids(const FieldScorer *f, PyObject *text, int32_t *ids) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text), m = 0;
    int previous_digit = 0;
    for (Py_ssize_t p = 0; p < length; p++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, p);
        /* what the reference's regex \d matches: Unicode decimal digits (Nd) */
        if (f->fold_digits && (c < 128 ? (c >= '0' && c <= '9') : Py_UNICODE_ISDECIMAL(c))) {
            if (previous_digit) continue; /* a run of digits keeps its first, as '0' */
            previous_digit = 1;
            ids[m++] = f->zero_id;
            continue;
        }
        previous_digit = 0;
        ids[m++] = (Py_ssize_t)c < f->char_id_len ? f->char_id[c] : 0;
    }
    return m;
}

PyDoc_STRVAR(add_scores_doc,
"add_scores(texts, scores, sq_norm)\n--\n\n"
"Add this field's weighted scores of each text (a list of str, already normalised as the\n"
"view's plain text) to the rows of scores (float64, len(texts) x classes) and, for each text\n"
"with a term of the field, the squared weight to sq_norm (float64, len(texts)).");

static PyObject *scorer_add_scores(FieldScorer *f, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"texts", "scores", "sq_norm", NULL};
    PyObject *texts_obj, *scores_obj, *sq_norm_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:add_scores", keywords, &texts_obj, &scores_obj,
                                     &sq_norm_obj)) {
        return NULL;
    }
    if (!PyList_Check(texts_obj) && !PyTuple_Check(texts_obj)) {
        PyErr_Format(PyExc_TypeError, "texts must be a list or tuple of str, not %.100s",
                     Py_TYPE(texts_obj)->tp_name);
        return NULL;
    }
    PyObject *texts = PySequence_Tuple(texts_obj); /* its own references: the texts stay as checked */
    if (texts == NULL) return NULL;
    Py_ssize_t n_docs = PyTuple_GET_SIZE(texts), longest = 0, k = f->n_classes;
    PyObject **items = PySequence_Fast_ITEMS(texts); /* a tuple's items */
    Py_buffer scores = {0}, sq_norm = {0};
    int32_t *ids = NULL, *unique = NULL;
    double *acc = NULL;
    PyObject *result = NULL;
    for (Py_ssize_t d = 0; d < n_docs; d++) {
        if (!PyUnicode_Check(items[d])) {
            PyErr_Format(PyExc_TypeError, "texts[%zd] must be str, not %.100s", d, Py_TYPE(items[d])->tp_name);
            goto done;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(items[d]) < 0) goto done;
#endif
        if (PyUnicode_GET_LENGTH(items[d]) > longest) longest = PyUnicode_GET_LENGTH(items[d]);
    }
    if (longest >= INT32_MAX / 3) { /* a term's count and a text's positions are int32 */
        PyErr_Format(PyExc_ValueError, "texts must be under %d characters", INT32_MAX / 3);
        goto done;
    }
    if (get_array(scores_obj, "scores", 'f', 2, 1, &scores) < 0) goto done;
    if (get_array(sq_norm_obj, "sq_norm", 'f', 1, 1, &sq_norm) < 0) goto done;
    if (shape(&scores, 0) != n_docs || shape(&scores, 1) != k || shape(&sq_norm, 0) != n_docs) {
        PyErr_Format(PyExc_ValueError, "scores must be %zd x %zd and sq_norm %zd long (one row per text), got %zd x %zd"
                     " and %zd", n_docs, k, n_docs, shape(&scores, 0), shape(&scores, 1), shape(&sq_norm, 0));
        goto done;
    }
    ids = PyMem_Malloc(sizeof(int32_t) * (size_t)(longest + 1));
    unique = PyMem_Malloc(sizeof(int32_t) * (size_t)(3 * longest + 1));
    acc = PyMem_Malloc(sizeof(double) * (size_t)k);
    if (ids == NULL || unique == NULL || acc == NULL) { PyErr_NoMemory(); goto done; }

    double *out = scores.buf, *out_sq_norm = sq_norm.buf;
    const int64_t n_ids = f->n_ids;
    const int32_t *single = f->single;
    int32_t *count = f->count;
    for (Py_ssize_t d = 0; d < n_docs; d++) {
        Py_ssize_t m = text_ids(f, items[d], ids), u = 0;

#define COUNT_TERM(column)                                   \
    do {                                                     \
        int32_t col_ = (column);                             \
        if (col_ >= 0 && count[col_]++ == 0) {               \
            unique[u++] = col_; /* the text's first */       \
        }                                                    \
    } while (0)

        for (Py_ssize_t i = 0; i < m; i++) {
            int64_t a = ids[i];
            if (i + PREFETCH + 1 < m) { /* the pair table misses the cache: ask early */
                uint64_t ahead = (uint64_t)(ids[i + PREFETCH] * n_ids + ids[i + PREFETCH + 1]);
                PREFETCH_AT(&f->pairs[(ahead * GOLDEN) >> (64 - f->pair_bits)]);
            }
            if (single != NULL) COUNT_TERM(single[a]);
            if (i + 1 < m && a > 0 && ids[i + 1] > 0) { /* a pair with an unknown character is no term */
                uint32_t entry = pair_entry(f, (uint32_t)(a * n_ids + ids[i + 1]));
                COUNT_TERM((int32_t)(entry & 0x7FFFFFFF) - 1);
                if ((entry & BEGINS_TRIPLE) && i + 2 < m && ids[i + 2] > 0) {
                    uint64_t key = ((uint64_t)3 << LENGTH_SHIFT) | ((uint64_t)a << (ID_BITS * 3))
                                   | ((uint64_t)ids[i + 1] << (ID_BITS * 2)) | ((uint64_t)ids[i + 2] << ID_BITS);
                    COUNT_TERM(triple_column(f, key));
                }
            }
        }
#undef COUNT_TERM
        if (u == 0) continue;
        /* row / |row| . coef = (sum of tf * idf * coef) / sqrt(sum of (tf * idf)^2) */
        double sumsq = 0.0;
        for (Py_ssize_t c = 0; c < k; c++) acc[c] = 0.0;
        for (Py_ssize_t j = 0; j < u; j++) {
            int32_t col = unique[j];
            const double *line = f->lines + (Py_ssize_t)col * (k + 1);
            if (j + PREFETCH < u) PREFETCH_AT(f->lines + (Py_ssize_t)unique[j + PREFETCH] * (k + 1));
            double t = tf(count[col]);
            count[col] = 0; /* ready for the next text */
            double v = t * line[0];
            sumsq += v * v;
            for (Py_ssize_t c = 0; c < k; c++) acc[c] += t * line[1 + c];
        }
        double scale = f->weight / sqrt(sumsq);
        for (Py_ssize_t c = 0; c < k; c++) out[d * k + c] += scale * acc[c];
        out_sq_norm[d] += f->weight * f->weight;
    }
    result = Py_NewRef(Py_None);

done:
    PyMem_Free(ids); PyMem_Free(unique); PyMem_Free(acc);
    if (scores.obj) PyBuffer_Release(&scores);
    if (sq_norm.obj) PyBuffer_Release(&sq_norm);
    Py_DECREF(texts);
    return result;
}

static PyMethodDef scorer_methods[] = {
    {"add_scores", (PyCFunction)(void (*)(void))scorer_add_scores, METH_VARARGS | METH_KEYWORDS, add_scores_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef scorer_members[] = {
    {"n_terms", T_PYSSIZET, offsetof(FieldScorer, n_terms), READONLY, "terms in the field's vocabulary"},
    {"n_classes", T_PYSSIZET, offsetof(FieldScorer, n_classes), READONLY, "classes scored"},
    {"weight", T_DOUBLE, offsetof(FieldScorer, weight), READONLY, "the field's weight"},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(scorer_doc,
"FieldScorer(*, chars, keys, idf, coef, weight, fold_digits)\n--\n\n"
"One view-field of the classifier, ready to score texts: chars (int64 code points, position\n"
"+ 1 = id), keys (int64 term keys, sorted, unique, 1-3-grams), idf (float64, one per key),\n"
"coef (float64, keys x classes), weight (the field's), fold_digits (digit runs to '0').");

static PyTypeObject FieldScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "services.router.classification._scores.FieldScorer",
    .tp_basicsize = sizeof(FieldScorer),
    .tp_dealloc = (destructor)scorer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = scorer_doc,
    .tp_methods = scorer_methods,
    .tp_members = scorer_members,
    .tp_new = scorer_new,
};

static struct PyModuleDef scores_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scores",
    .m_doc = "The classifier's compiled scoring kernel (see _scores.c and model.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__scores(void) {
    for (int32_t n = 1; n < SMALL_COUNTS; n++) sublinear[n] = 1.0 + log((double)n);
    if (PyType_Ready(&FieldScorerType) < 0) return NULL;
    PyObject *module = PyModule_Create(&scores_module);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "FieldScorer", (PyObject *)&FieldScorerType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
