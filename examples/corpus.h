/* examples/corpus.h - the default training corpus, generated (so `make demo` needs no data):
 * English-like sentences from a small grammar, with agreement, punctuation and line breaks,
 * mixed with simple arithmetic facts. Deterministic for a given seed, on every platform.
 * A byte-level model learns spelling, word order and (slowly) the sums. */
#ifndef MHC_CORPUS_H
#define MHC_CORPUS_H
#include <string.h>

#define CORPUS_DEFAULT_BYTES (1u << 20)

static const char *corpus__det[] = {"the", "a", "one", "every", "that", "this"};
static const char *corpus__adj[] = {"small", "old", "quiet", "bright", "red", "tired", "clever", "green",
                                    "heavy", "gentle", "brave", "strange"};
static const char *corpus__noun[] = {"cat", "dog", "bird", "river", "child", "farmer", "window", "garden",
                                     "teacher", "horse", "mountain", "letter", "king", "ship", "tree", "storm"};
static const char *corpus__verb[] = {"sees", "follows", "finds", "watches", "carries", "remembers", "draws",
                                     "helps", "hears", "builds", "keeps", "crosses"};
static const char *corpus__iverb[] = {"sleeps", "waits", "sings", "runs", "laughs", "falls", "shines", "rests"};
static const char *corpus__prep[] = {"near", "under", "behind", "beside", "over", "across"};
static const char *corpus__adv[] = {"slowly", "again", "today", "at night", "in the morning", "quietly"};

#define CORPUS__N(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct corpus__buf { char *p; size_t len, cap; } corpus__buf;

static void corpus__put(corpus__buf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n > b->cap) n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static const char *corpus__pick(mhc_rng *r, const char **list, int n) { return list[mhc_rng_below(r, (uint32_t)n)]; }

static void corpus__np(corpus__buf *b, mhc_rng *r) {
    corpus__put(b, corpus__pick(r, corpus__det, CORPUS__N(corpus__det)));
    corpus__put(b, " ");
    if (mhc_rng_below(r, 2)) { corpus__put(b, corpus__pick(r, corpus__adj, CORPUS__N(corpus__adj))); corpus__put(b, " "); }
    corpus__put(b, corpus__pick(r, corpus__noun, CORPUS__N(corpus__noun)));
}

/* Fills buf[0..len) with text (the last sentence is cut at len). */
static void corpus_generate(char *buf, size_t len, uint64_t seed) {
    corpus__buf b;
    mhc_rng r;
    char tmp[64];
    b.p = buf; b.len = 0; b.cap = len;
    mhc_rng_seed(&r, seed);
    while (b.len < b.cap) {
        uint32_t kind = mhc_rng_below(&r, 10);
        if (kind < 2) {   /* arithmetic: "17 plus 25 is 42." */
            unsigned x = mhc_rng_below(&r, 50), y = mhc_rng_below(&r, 50);
            snprintf(tmp, sizeof tmp, "%u plus %u is %u.", x, y, x + y);
            corpus__put(&b, tmp);
        } else {
            size_t start = b.len;
            corpus__np(&b, &r);
            corpus__put(&b, " ");
            if (kind < 6) { corpus__put(&b, corpus__pick(&r, corpus__verb, CORPUS__N(corpus__verb))); corpus__put(&b, " "); corpus__np(&b, &r); }
            else corpus__put(&b, corpus__pick(&r, corpus__iverb, CORPUS__N(corpus__iverb)));
            if (mhc_rng_below(&r, 3) == 0) { corpus__put(&b, " "); corpus__put(&b, corpus__pick(&r, corpus__prep, CORPUS__N(corpus__prep))); corpus__put(&b, " "); corpus__np(&b, &r); }
            if (mhc_rng_below(&r, 4) == 0) { corpus__put(&b, " "); corpus__put(&b, corpus__pick(&r, corpus__adv, CORPUS__N(corpus__adv))); }
            corpus__put(&b, mhc_rng_below(&r, 8) == 0 ? "?" : ".");
            if (start < b.cap && buf[start] >= 'a' && buf[start] <= 'z') buf[start] = (char)(buf[start] - 'a' + 'A');
        }
        corpus__put(&b, mhc_rng_below(&r, 5) == 0 ? "\n" : " ");
    }
}
#endif
