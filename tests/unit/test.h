/* test: the unit-test harness. One binary per module; each TEST is a
 * function, run in order by main() from TEST_MAIN. A failed CHECK reports
 * file:line and the expression, and marks the test failed; the binary
 * prints "N passed, N failed" and exits non-zero if any failed.
 *
 *   TEST(priority_matrix) { CHECK(incident_priority(1, 1) == 1); }
 *   TEST_MAIN(RUN(priority_matrix))
 *
 * Randomised tests take their seed from TEST_SEED (default: time) and print
 * it on failure so that a run replays exactly. */
#ifndef IM_TEST_H
#define IM_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int test_failed_;
static int test_passed_count_, test_failed_count_;
static uint64_t test_seed_;

#define TEST(name) static void test_##name(void)

#define CHECK(expr)                                                          \
    do {                                                                     \
        if (!(expr)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #expr);                                                  \
            test_failed_ = 1;                                                \
        }                                                                    \
    } while (0)

/* Like CHECK, but stops the test (for preconditions of what follows). */
#define REQUIRE(expr)                                                        \
    do {                                                                     \
        if (!(expr)) {                                                       \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__,         \
                    __LINE__, #expr);                                        \
            test_failed_ = 1;                                                \
            return;                                                          \
        }                                                                    \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                   \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ != b_) {                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, #a, #b, a_, b_);                     \
            test_failed_ = 1;                                                \
        }                                                                    \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                   \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {               \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", \
                    __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",         \
                    b_ ? b_ : "(null)");                                     \
            test_failed_ = 1;                                                \
        }                                                                    \
    } while (0)

#define RUN(name)                                                            \
    do {                                                                     \
        test_failed_ = 0;                                                    \
        test_##name();                                                       \
        if (test_failed_) {                                                  \
            test_failed_count_++;                                            \
            fprintf(stderr, "FAIL %s (TEST_SEED=%" PRIu64 ")\n", #name,     \
                    test_seed_);                                             \
        } else {                                                             \
            test_passed_count_++;                                            \
        }                                                                    \
    } while (0)

/* xorshift64*: a small, seeded, reproducible PRNG for randomised tests. */
static inline uint64_t
test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#define TEST_MAIN(...)                                                       \
    int main(void)                                                           \
    {                                                                        \
        const char *s = getenv("TEST_SEED");                                 \
        test_seed_ = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);       \
        if (test_seed_ == 0)                                                 \
            test_seed_ = 1;                                                  \
        __VA_ARGS__;                                                         \
        printf("%s: %d passed, %d failed\n", __FILE__, test_passed_count_,  \
               test_failed_count_);                                          \
        return test_failed_count_ ? 1 : 0;                                   \
    }

#endif
