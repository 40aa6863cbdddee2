/* Unit tests for lib/err: the code table (every code distinct, negative,
 * with a name and a text), im_errf and im_errwrap (context wrapping, the
 * code kept, truncation at IM_ERRMSG_MAX without overflow), NULL contexts,
 * and the errno translation. */
#include "test.h"

#include <errno.h>

#include "err.h"

/* Every code of the X-macro table, with its name and text as written
 * there, so that a code added later is covered without editing this. */
static const struct {
    int code;
    const char *name;
    const char *text;
} codes[] = {
#define CODE_(name, msg) {name, #name, msg},
    IM_ERRORS(CODE_)
#undef CODE_
};
#define CODES_COUNT (sizeof codes / sizeof codes[0])

TEST(code_table)
{
    CHECK_EQ_INT(CODES_COUNT, IM_ERR_COUNT_);
    for (size_t i = 0; i < CODES_COUNT; i++) {
        /* Codes are -1, -2, ... in table order: dense, so the lookup
         * tables index them directly. */
        CHECK_EQ_INT(codes[i].code, -(int)(i + 1));
        CHECK_EQ_STR(im_errname(codes[i].code), codes[i].name);
        CHECK_EQ_STR(im_strerror(codes[i].code), codes[i].text);
        CHECK(strncmp(codes[i].name, "IM_E", 4) == 0);
        CHECK(codes[i].text[0] != '\0');
        for (size_t j = 0; j < i; j++) {
            CHECK(strcmp(codes[i].name, codes[j].name) != 0);
            /* Distinct texts: an operator can tell errors apart. */
            CHECK(strcmp(codes[i].text, codes[j].text) != 0);
        }
    }
}

TEST(known_names_and_texts)
{
    CHECK_EQ_STR(im_strerror(IM_ENOTFOUND), "not found");
    CHECK_EQ_STR(im_errname(IM_ENOTFOUND), "IM_ENOTFOUND");
    CHECK_EQ_STR(im_strerror(IM_ENOSPC), "disk full");
    CHECK_EQ_STR(im_strerror(IM_EFULL), "store full");
    CHECK_EQ_STR(im_errname(IM_ESTALE), "IM_ESTALE");
    CHECK_EQ_INT(IM_OK, 0);
    CHECK_EQ_STR(im_strerror(0), "ok");
    CHECK_EQ_STR(im_errname(0), "IM_OK");
}

TEST(unknown_codes)
{
    /* Foreign code spaces (a raw errno, an LMDB or NNG code) and codes
     * past the table never index out of it. */
    const int others[] = {1,     2,      12,        -IM_ERR_COUNT_ - 1,
                          -1000, -30798, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        CHECK_EQ_STR(im_strerror(others[i]), "unknown error");
        CHECK_EQ_STR(im_errname(others[i]), "IM_EUNKNOWN");
    }
    /* The last code of the table is still known. */
    CHECK(strcmp(im_strerror(-IM_ERR_COUNT_), "unknown error") != 0);
}

TEST(errf_sets_code_and_message)
{
    struct im_err e = {0};
    int rv = im_errf(&e, IM_EINVAL, "bad %s at %d", "site", 7);
    CHECK_EQ_INT(rv, IM_EINVAL);
    CHECK_EQ_INT(e.code, IM_EINVAL);
    CHECK_EQ_STR(e.msg, "bad site at 7");
    CHECK_EQ_STR(im_errmsg(&e), "bad site at 7");

    /* A second errf replaces, it does not append. */
    im_errf(&e, IM_ENOTFOUND, "no %s", "AMS-9");
    CHECK_EQ_INT(e.code, IM_ENOTFOUND);
    CHECK_EQ_STR(im_errmsg(&e), "no AMS-9");

    /* A NULL context is allowed: only the code comes back. */
    CHECK_EQ_INT(im_errf(NULL, IM_EIO, "ignored %d", 1), IM_EIO);
}

TEST(errmsg_falls_back_to_code_text)
{
    struct im_err e = {0};
    CHECK_EQ_STR(im_errmsg(&e), "ok");
    e.code = IM_EBUSY;
    CHECK_EQ_STR(im_errmsg(&e), "busy, try again");
    im_errf(&e, IM_EDENIED, "%s", "");
    CHECK_EQ_STR(im_errmsg(&e), "permission denied");
}

TEST(errclear)
{
    struct im_err e;
    im_errf(&e, IM_ECORRUPT, "chain broken at %d", 3);
    im_errclear(&e);
    CHECK_EQ_INT(e.code, 0);
    CHECK_EQ_STR(e.msg, "");
    CHECK_EQ_STR(im_errmsg(&e), "ok");
    im_errclear(NULL); /* harmless */
}

TEST(errwrap_adds_context_at_each_layer)
{
    struct im_err e = {0};
    im_errf(&e, IM_ENOTFOUND, "mdb_env_open: %s", "No such file or directory");
    CHECK_EQ_INT(im_errwrap(&e, "open %s", "/var/lib/im/ams"), IM_ENOTFOUND);
    CHECK_EQ_STR(im_errmsg(&e),
                 "open /var/lib/im/ams: mdb_env_open: No such file or "
                 "directory");
    CHECK_EQ_INT(im_errwrap(&e, "start node %s", "AMS"), IM_ENOTFOUND);
    CHECK_EQ_STR(im_errmsg(&e), "start node AMS: open /var/lib/im/ams: "
                                "mdb_env_open: No such file or directory");
    CHECK_EQ_INT(e.code, IM_ENOTFOUND);
}

TEST(errwrap_without_message_uses_code_text)
{
    struct im_err e = {0};
    e.code = IM_ENOSPC;
    CHECK_EQ_INT(im_errwrap(&e, "commit batch of %d", 12), IM_ENOSPC);
    CHECK_EQ_STR(im_errmsg(&e), "commit batch of 12: disk full");
    CHECK_EQ_INT(im_errwrap(NULL, "x"), IM_EINVAL);
}

/* Fills a string of n 'c' bytes. */
static char *
filled(char *buf, size_t n, char c)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

TEST(truncation_at_errmsg_max)
{
    static char big[4 * IM_ERRMSG_MAX + 1];
    struct im_err e;

    /* A message longer than the buffer is cut, NUL-terminated, never
     * overflowing (ASan watches the neighbouring bytes). */
    memset(&e, 0x55, sizeof e);
    im_errf(&e, IM_ETOOBIG, "%s", filled(big, sizeof big - 1, 'a'));
    CHECK_EQ_INT(e.code, IM_ETOOBIG);
    CHECK_EQ_INT(strlen(e.msg), IM_ERRMSG_MAX - 1);
    CHECK(e.msg[0] == 'a' && e.msg[IM_ERRMSG_MAX - 2] == 'a');

    /* Wrapping a full message keeps the prefix (the outermost context is
     * what the operator reads first) and cuts the tail. */
    CHECK_EQ_INT(im_errwrap(&e, "layer %d", 2), IM_ETOOBIG);
    CHECK_EQ_INT(strlen(e.msg), IM_ERRMSG_MAX - 1);
    CHECK(strncmp(e.msg, "layer 2: aaa", 12) == 0);

    /* An over-long prefix fills the buffer on its own. */
    im_errf(&e, IM_EIO, "inner");
    im_errwrap(&e, "%s", filled(big, 2 * IM_ERRMSG_MAX, 'p'));
    CHECK_EQ_INT(strlen(e.msg), IM_ERRMSG_MAX - 1);
    CHECK(e.msg[0] == 'p' && e.msg[IM_ERRMSG_MAX - 2] == 'p');
    CHECK_EQ_INT(e.code, IM_EIO);

    /* Exactly at the limit: IM_ERRMSG_MAX - 1 bytes fit whole. */
    im_errf(&e, IM_EIO, "%s", filled(big, IM_ERRMSG_MAX - 1, 'b'));
    CHECK_EQ_INT(strlen(e.msg), IM_ERRMSG_MAX - 1);
    im_errf(&e, IM_EIO, "%s", filled(big, IM_ERRMSG_MAX, 'b'));
    CHECK_EQ_INT(strlen(e.msg), IM_ERRMSG_MAX - 1);

    /* A prefix that leaves room for part of the old message. */
    im_errf(&e, IM_EIO, "%s", filled(big, IM_ERRMSG_MAX - 1, 'o'));
    im_errwrap(&e, "%s", "pre");
    CHECK_EQ_INT(strlen(e.msg), IM_ERRMSG_MAX - 1);
    CHECK(strncmp(e.msg, "pre: ooo", 8) == 0);
}

TEST(errno_translation)
{
    static const struct {
        int errnum, code;
    } map[] = {
        {0, IM_OK},
        {ENOMEM, IM_ENOMEM},
        {ENOSPC, IM_ENOSPC},
        {EDQUOT, IM_ENOSPC},
        {ENOENT, IM_ENOTFOUND},
        {EEXIST, IM_EEXIST},
        {EACCES, IM_EDENIED},
        {EPERM, IM_EDENIED},
        {EINVAL, IM_EINVAL},
        {ETIMEDOUT, IM_ETIMEDOUT},
        {ECONNREFUSED, IM_EUNREACH},
        {EHOSTUNREACH, IM_EUNREACH},
        {ENETUNREACH, IM_EUNREACH},
        /* Everything else is an I/O error, never a raw errno. */
        {EIO, IM_EIO},
        {EBADF, IM_EIO},
        {EROFS, IM_EIO},
        {EMFILE, IM_EIO},
        {9999, IM_EIO},
        {-5, IM_EIO},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        int got = im_from_errno(map[i].errnum);
        if (got != map[i].code)
            fprintf(stderr, "errno %d: got %s, want %s\n", map[i].errnum,
                    im_errname(got), im_errname(map[i].code));
        CHECK_EQ_INT(got, map[i].code);
    }
    /* Every translation is one of our codes. */
    for (int n = 0; n < 200; n++) {
        int got = im_from_errno(n);
        CHECK(got <= 0 && got >= -IM_ERR_COUNT_);
    }
}

TEST_MAIN(RUN(code_table); RUN(known_names_and_texts); RUN(unknown_codes);
          RUN(errf_sets_code_and_message); RUN(errmsg_falls_back_to_code_text);
          RUN(errclear); RUN(errwrap_adds_context_at_each_layer);
          RUN(errwrap_without_message_uses_code_text);
          RUN(truncation_at_errmsg_max); RUN(errno_translation))
