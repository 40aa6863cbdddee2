/* text: validation of the strings that come from outside (CLI, API, HTTP,
 * network): UTF-8, no control characters, bounded size.
 *
 * Single-line fields (titles, names, codes) allow no control characters at
 * all; multi-line fields (descriptions, notes) allow '\n' and '\t'. */
#ifndef IM_TEXT_H
#define IM_TEXT_H

#include <stddef.h>

#include "err.h"

enum text_kind { TEXT_LINE, TEXT_MULTILINE };

/* 0 if s is valid UTF-8 (no overlongs, no surrogates), at most max bytes,
 * allowed control characters only, and (if required) not empty after
 * trimming spaces, tabs and newlines. Otherwise IM_EINVAL or IM_ETOOBIG with a message naming
 * `field` ("title is longer than 200 bytes"). */
int text_check(const char *s, size_t max, enum text_kind kind, int required,
               const char *field, struct im_err *e);

/* 0 if the n bytes at s are valid UTF-8 (for payloads that are not
 * NUL-terminated). */
int text_utf8_valid(const char *s, size_t n);

#endif
