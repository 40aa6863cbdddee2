/* text: see text.h. */
#include "text.h"

#include <string.h>

/* Length of the valid UTF-8 prefix of the n bytes at s (n if all valid).
 * Follows the Unicode well-formed byte sequences table (Unicode 15, table
 * 3-7): the second byte's range depends on the first, which is what rules
 * out overlongs (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and
 * code points past U+10FFFF (F4 90.., F5..FF). */
static size_t
utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return i;
        }
        if (n - i < len)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return i;
        i += len;
    }
    return n;
}

int
text_utf8_valid(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (s == NULL)
        return IM_EINVAL;
    return utf8_valid_prefix((const unsigned char *)s, n) == n ? 0 : IM_EINVAL;
}

static int
is_control(unsigned char c, enum text_kind kind)
{
    if (kind == TEXT_MULTILINE && (c == '\n' || c == '\t'))
        return 0;
    return c < 0x20 || c == 0x7f;
}

static int
is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

int
text_check(const char *s, size_t max, enum text_kind kind, int required,
           const char *field, struct im_err *e)
{
    size_t size, valid, i;
    int blank = 1;

    if (s == NULL)
        s = "";
    size = strlen(s);
    if (size > max)
        return im_errf(e, IM_ETOOBIG, "%s is longer than %zu bytes", field,
                       max);
    valid = utf8_valid_prefix((const unsigned char *)s, size);
    if (valid != size)
        return im_errf(e, IM_EINVAL, "%s is not valid UTF-8 (at byte %zu)",
                       field, valid);
    for (i = 0; i < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_control(c, kind))
            return im_errf(e, IM_EINVAL,
                           "%s contains control character 0x%02x at byte "
                           "%zu%s",
                           field, c, i,
                           kind == TEXT_MULTILINE
                               ? " (only newline and tab are allowed)"
                               : "");
        if (!is_blank(c))
            blank = 0;
    }
    if (required && blank)
        return im_errf(e, IM_EINVAL, "%s is required", field);
    return 0;
}
