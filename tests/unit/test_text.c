/* Unit tests for lib/text: UTF-8 validation, control characters, bounds and
 * the messages that name the field. */
#include "test.h"

#include "text.h"

struct utf8_case {
    const char *bytes;
    size_t size;
    int valid;
    const char *what;
};

#define U(s, v, what)                                                          \
    {                                                                          \
        s, sizeof(s) - 1, v, what                                              \
    }

static const struct utf8_case utf8_cases[] = {
    U("", 1, "empty"),
    U("a", 1, "ASCII"),
    U("\x7f", 1, "DEL is valid UTF-8 (refused by text_check as control)"),
    U("\xc2\x80", 1, "U+0080, smallest 2-byte"),
    U("\xc3\xa9", 1, "U+00E9"),
    U("\xdf\xbf", 1, "U+07FF, largest 2-byte"),
    U("\xe0\xa0\x80", 1, "U+0800, smallest 3-byte"),
    U("\xe2\x82\xac", 1, "U+20AC euro"),
    U("\xed\x9f\xbf", 1, "U+D7FF, just below the surrogates"),
    U("\xee\x80\x80", 1, "U+E000, just above the surrogates"),
    U("\xef\xbf\xbf", 1, "U+FFFF"),
    U("\xf0\x90\x80\x80", 1, "U+10000, smallest 4-byte"),
    U("\xf0\x9d\x84\x9e", 1, "U+1D11E"),
    U("\xf4\x8f\xbf\xbf", 1, "U+10FFFF, largest code point"),
    U("a\xc3\xa9z\xe2\x82\xac", 1, "mixed"),
    U("\xc0\x80", 0, "overlong NUL"),
    U("\xc0\xaf", 0, "overlong '/'"),
    U("\xc1\xbf", 0, "overlong 2-byte"),
    U("\xe0\x80\x80", 0, "overlong 3-byte NUL"),
    U("\xe0\x9f\xbf", 0, "overlong 3-byte U+07FF"),
    U("\xf0\x80\x80\x80", 0, "overlong 4-byte NUL"),
    U("\xf0\x8f\xbf\xbf", 0, "overlong 4-byte U+FFFF"),
    U("\xed\xa0\x80", 0, "surrogate U+D800"),
    U("\xed\xaf\xbf", 0, "surrogate U+DBFF"),
    U("\xed\xb0\x80", 0, "surrogate U+DC00"),
    U("\xed\xbf\xbf", 0, "surrogate U+DFFF"),
    U("\xed\xa0\xbd\xed\xb2\xa9", 0, "CESU-8 surrogate pair"),
    U("\xf4\x90\x80\x80", 0, "U+110000"),
    U("\xf5\x80\x80\x80", 0, "lead F5"),
    U("\xf7\xbf\xbf\xbf", 0, "lead F7"),
    U("\xf8\x88\x80\x80\x80", 0, "5-byte form"),
    U("\xfc\x84\x80\x80\x80\x80", 0, "6-byte form"),
    U("\xfe", 0, "FE"),
    U("\xff", 0, "FF"),
    U("\x80", 0, "lone continuation"),
    U("\xbf", 0, "lone continuation BF"),
    U("a\x80z", 0, "continuation after ASCII"),
    U("\xc3", 0, "truncated 2-byte"),
    U("\xe2\x82", 0, "truncated 3-byte"),
    U("\xf0\x9d\x84", 0, "truncated 4-byte"),
    U("abc\xe2", 0, "truncated at the end"),
    U("\xc3\x41", 0, "2-byte with ASCII continuation"),
    U("\xe2\x28\xa1", 0, "3-byte with bad second byte"),
    U("\xe2\x82\x28", 0, "3-byte with bad third byte"),
    U("\xf0\x90\x28\xbc", 0, "4-byte with bad third byte"),
    U("\xf0\x90\x80\xc0", 0, "4-byte with bad fourth byte"),
    U("\xc3\xa9\xc3", 0, "valid then truncated"),
};

TEST(utf8_table)
{
    struct im_err e;

    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        int rv = text_utf8_valid(c->bytes, c->size);
        if ((rv == 0) != c->valid) {
            fprintf(stderr, "utf8 case %zu (%s): got %d\n", i, c->what, rv);
            CHECK(0);
        }
        /* text_check applies the same rule to NUL-terminated strings;
         * DEL is the one valid sequence it refuses for another reason. */
        if (c->bytes[0] != 0x7f) {
            im_errclear(&e);
            rv = text_check(c->bytes, 100, TEXT_MULTILINE, 0, "f", &e);
            if ((rv == 0) != c->valid) {
                fprintf(stderr, "text_check case %zu (%s): got %d\n", i,
                        c->what, rv);
                CHECK(0);
            }
            if (!c->valid)
                CHECK(strstr(e.msg, "f is not valid UTF-8") == e.msg);
        }
    }
}

TEST(utf8_counted)
{
    /* A counted payload may hold NUL, which is valid UTF-8. */
    CHECK(text_utf8_valid("a\0b", 3) == 0);
    CHECK(text_utf8_valid(NULL, 0) == 0);
    /* The count bounds the check: a sequence cut by it is truncated. */
    CHECK(text_utf8_valid("\xe2\x82\xac", 2) == IM_EINVAL);
    CHECK(text_utf8_valid("\xe2\x82\xac", 3) == 0);
}

TEST(utf8_error_offset)
{
    struct im_err e;

    CHECK(text_check("ab\xc3\xa9\xff", 100, TEXT_LINE, 0, "title", &e) ==
          IM_EINVAL);
    CHECK_EQ_STR(e.msg, "title is not valid UTF-8 (at byte 4)");
}

TEST(control_characters)
{
    struct im_err e;

    for (int c = 1; c < 0x20; c++) {
        char s[4] = {'a', (char)c, 'b', 0};
        int multiline_ok = c == '\n' || c == '\t';
        CHECK(text_check(s, 10, TEXT_LINE, 0, "name", &e) == IM_EINVAL);
        CHECK(text_check(s, 10, TEXT_MULTILINE, 0, "note", &e) ==
              (multiline_ok ? 0 : IM_EINVAL));
    }
    CHECK(text_check("a\x7f", 10, TEXT_LINE, 0, "name", &e) == IM_EINVAL);
    CHECK(text_check("a\x7f", 10, TEXT_MULTILINE, 0, "note", &e) == IM_EINVAL);
    CHECK(text_check("a\rb", 10, TEXT_MULTILINE, 0, "note", &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "note contains control character 0x0d at byte 1 "
                        "(only newline and tab are allowed)");
    CHECK(text_check("a\tb", 10, TEXT_LINE, 0, "title", &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "title contains control character 0x09 at byte 1");
    /* C1 controls are printable as far as this check goes (U+0085). */
    CHECK(text_check("\xc2\x85", 10, TEXT_LINE, 0, "name", &e) == 0);
}

TEST(bounds)
{
    char s[202];
    struct im_err e;

    memset(s, 'x', 200);
    s[200] = '\0';
    CHECK(text_check(s, 200, TEXT_LINE, 1, "title", &e) == 0);
    s[200] = 'x';
    s[201] = '\0';
    CHECK(text_check(s, 200, TEXT_LINE, 1, "title", &e) == IM_ETOOBIG);
    CHECK_EQ_STR(e.msg, "title is longer than 200 bytes");
    /* The bound counts bytes, not characters. */
    CHECK(text_check("\xc3\xa9\xc3\xa9", 3, TEXT_LINE, 0, "x", &e) ==
          IM_ETOOBIG);
    CHECK(text_check("\xc3\xa9\xc3\xa9", 4, TEXT_LINE, 0, "x", &e) == 0);
}

TEST(required)
{
    struct im_err e;

    CHECK(text_check("", 10, TEXT_LINE, 1, "title", &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "title is required");
    CHECK(text_check("   ", 10, TEXT_LINE, 1, "title", &e) == IM_EINVAL);
    CHECK(text_check(" \n\t ", 10, TEXT_MULTILINE, 1, "note", &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "note is required");
    CHECK(text_check(NULL, 10, TEXT_LINE, 1, "title", &e) == IM_EINVAL);
    CHECK(text_check(NULL, 10, TEXT_LINE, 0, "title", &e) == 0);
    CHECK(text_check("", 10, TEXT_LINE, 0, "title", &e) == 0);
    CHECK(text_check(" a ", 10, TEXT_LINE, 1, "title", &e) == 0);
    /* A NULL e is allowed: the code alone. */
    CHECK(text_check("", 10, TEXT_LINE, 1, "title", NULL) == IM_EINVAL);
}

TEST_MAIN(RUN(utf8_table); RUN(utf8_counted); RUN(utf8_error_offset);
          RUN(control_characters); RUN(bounds); RUN(required))
