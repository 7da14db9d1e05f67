/* gpt/corpus.h - the default training corpus, generated (so `make demo` needs no data):
 * English-like sentences from a small grammar, with agreement, punctuation and line breaks,
 * mixed with simple arithmetic facts. Deterministic for a given seed, on every platform.
 * A byte-level model learns spelling, word order and (slowly) the sums. */
#ifndef GPT_CORPUS_H
#define GPT_CORPUS_H
#include <string.h>

#define GPT_CORPUS_DEFAULT_BYTES (1u << 20)

static const char *gpt_corpus__det[] = {"the", "a", "one", "every", "that", "this"};
static const char *gpt_corpus__adj[] = {"small", "old", "quiet", "bright", "red", "tired", "clever", "green",
                                    "heavy", "gentle", "brave", "strange"};
static const char *gpt_corpus__noun[] = {"cat", "dog", "bird", "river", "child", "farmer", "window", "garden",
                                     "teacher", "horse", "mountain", "letter", "king", "ship", "tree", "storm"};
static const char *gpt_corpus__verb[] = {"sees", "follows", "finds", "watches", "carries", "remembers", "draws",
                                     "helps", "hears", "builds", "keeps", "crosses"};
static const char *gpt_corpus__iverb[] = {"sleeps", "waits", "sings", "runs", "laughs", "falls", "shines", "rests"};
static const char *gpt_corpus__prep[] = {"near", "under", "behind", "beside", "over", "across"};
static const char *gpt_corpus__adv[] = {"slowly", "again", "today", "at night", "in the morning", "quietly"};

#define GPT_CORPUS__N(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct gpt_corpus__buf { char *p; size_t len, cap; } gpt_corpus__buf;

static void gpt_corpus__put(gpt_corpus__buf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n > b->cap) n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static const char *gpt_corpus__pick(mhc_rng *r, const char **list, int n) { return list[mhc_rng_below(r, (uint32_t)n)]; }

static void gpt_corpus__np(gpt_corpus__buf *b, mhc_rng *r) {
    gpt_corpus__put(b, gpt_corpus__pick(r, gpt_corpus__det, GPT_CORPUS__N(gpt_corpus__det)));
    gpt_corpus__put(b, " ");
    if (mhc_rng_below(r, 2)) { gpt_corpus__put(b, gpt_corpus__pick(r, gpt_corpus__adj, GPT_CORPUS__N(gpt_corpus__adj))); gpt_corpus__put(b, " "); }
    gpt_corpus__put(b, gpt_corpus__pick(r, gpt_corpus__noun, GPT_CORPUS__N(gpt_corpus__noun)));
}

/* Fills buf[0..len) with text (the last sentence is cut at len). */
static void gpt_corpus_generate(char *buf, size_t len, uint64_t seed) {
    gpt_corpus__buf b;
    mhc_rng r;
    char tmp[64];
    b.p = buf; b.len = 0; b.cap = len;
    mhc_rng_seed(&r, seed);
    while (b.len < b.cap) {
        uint32_t kind = mhc_rng_below(&r, 10);
        if (kind < 2) {   /* arithmetic: "17 plus 25 is 42." */
            unsigned x = mhc_rng_below(&r, 50), y = mhc_rng_below(&r, 50);
            snprintf(tmp, sizeof tmp, "%u plus %u is %u.", x, y, x + y);
            gpt_corpus__put(&b, tmp);
        } else {
            size_t start = b.len;
            gpt_corpus__np(&b, &r);
            gpt_corpus__put(&b, " ");
            if (kind < 6) { gpt_corpus__put(&b, gpt_corpus__pick(&r, gpt_corpus__verb, GPT_CORPUS__N(gpt_corpus__verb))); gpt_corpus__put(&b, " "); gpt_corpus__np(&b, &r); }
            else gpt_corpus__put(&b, gpt_corpus__pick(&r, gpt_corpus__iverb, GPT_CORPUS__N(gpt_corpus__iverb)));
            if (mhc_rng_below(&r, 3) == 0) { gpt_corpus__put(&b, " "); gpt_corpus__put(&b, gpt_corpus__pick(&r, gpt_corpus__prep, GPT_CORPUS__N(gpt_corpus__prep))); gpt_corpus__put(&b, " "); gpt_corpus__np(&b, &r); }
            if (mhc_rng_below(&r, 4) == 0) { gpt_corpus__put(&b, " "); gpt_corpus__put(&b, gpt_corpus__pick(&r, gpt_corpus__adv, GPT_CORPUS__N(gpt_corpus__adv))); }
            gpt_corpus__put(&b, mhc_rng_below(&r, 8) == 0 ? "?" : ".");
            if (start < b.cap && buf[start] >= 'a' && buf[start] <= 'z') buf[start] = (char)(buf[start] - 'a' + 'A');
        }
        gpt_corpus__put(&b, mhc_rng_below(&r, 5) == 0 ? "\n" : " ");
    }
}
#endif
