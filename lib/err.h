/* err: the project's error codes and the error-context buffer.
 *
 * Every function that can fail returns int: 0 on success, a negative IM_E*
 * code on failure. Library codes (LMDB, NNG, libsodium, curl, errno) are
 * translated once, at the edge, and never travel upward. Context travels in
 * a struct im_err owned by the caller and wrapped at each layer, so that the
 * operator reads "open /var/lib/im/ams: mdb_env_open: No such file or
 * directory", not "-2". */
#ifndef IM_ERR_H
#define IM_ERR_H

#include <stddef.h>

#define IM_ERRORS(X)                                                    \
    X(IM_ENOMEM, "out of memory")                                       \
    X(IM_EINVAL, "invalid input")                                       \
    X(IM_ENOTFOUND, "not found")                                        \
    X(IM_ETOOBIG, "exceeds limit")                                      \
    X(IM_EBADSIG, "signature invalid")                                  \
    X(IM_EUNKNOWNKEY, "unknown key")                                    \
    X(IM_EDENIED, "permission denied")                                  \
    X(IM_ESTATE, "transition not allowed")                              \
    X(IM_ESTALE, "stale owner token")                                   \
    X(IM_EFULL, "store full")                                           \
    X(IM_ENOSPC, "disk full")                                           \
    X(IM_EIO, "I/O error")                                              \
    X(IM_ESTORE, "storage error")                                       \
    X(IM_EPROTO, "malformed message")                                   \
    X(IM_EUNREACH, "unreachable")                                       \
    X(IM_ETIMEDOUT, "timed out")                                        \
    X(IM_EBUSY, "busy, try again")                                      \
    X(IM_ECONFIG, "invalid configuration")                              \
    X(IM_EEXIST, "already exists")                                      \
    X(IM_ECORRUPT, "data corrupt")                                      \
    X(IM_ECLOCK, "clock skew too large")                                \
    X(IM_ECLOSED, "shutting down")                                      \
    X(IM_ECRYPTO, "cryptographic failure")                             \
    X(IM_EAUTH, "authentication failed")                                \
    X(IM_EREPLAY, "replayed or stale frame")                           \
    X(IM_ENOTLEADER, "not the coordinator leader")                     \
    X(IM_ENOLEASE, "no owner lease")

enum im_err_index {
#define IM_ERR_INDEX_(name, msg) name##_INDEX_,
    IM_ERRORS(IM_ERR_INDEX_)
#undef IM_ERR_INDEX_
    IM_ERR_COUNT_
};

enum im_err_code {
    IM_OK = 0,
#define IM_ERR_CODE_(name, msg) name = -(name##_INDEX_ + 1),
    IM_ERRORS(IM_ERR_CODE_)
#undef IM_ERR_CODE_
};

/* Bounded so that an error never allocates. */
#define IM_ERRMSG_MAX 512

struct im_err {
    int code;
    char msg[IM_ERRMSG_MAX];
};

/* The fixed text of a code ("not found"); "unknown error" for anything else. */
const char *im_strerror(int code);

/* The symbolic name of a code ("IM_ENOTFOUND"). */
const char *im_errname(int code);

/* Sets e (if not NULL) to code and a printf-style message; returns code, so
 * callers can write `return im_errf(e, IM_EINVAL, "bad %s", x);`. */
int im_errf(struct im_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes e->msg with "prefix: ", keeping e->code; returns e->code.
 * Used to wrap context at each layer. */
int im_errwrap(struct im_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears e. */
void im_errclear(struct im_err *e);

/* The message of e, or the code's fixed text if no message was set. */
const char *im_errmsg(const struct im_err *e);

/* Translates an errno value into an IM_E* code (ENOSPC -> IM_ENOSPC, ...). */
int im_from_errno(int errnum);

#endif
