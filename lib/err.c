/* err: see err.h. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const im_err_text[IM_ERR_COUNT_] = {
#define IM_ERR_TEXT_(name, msg) [name##_INDEX_] = msg,
    IM_ERRORS(IM_ERR_TEXT_)
#undef IM_ERR_TEXT_
};

static const char *const im_err_names[IM_ERR_COUNT_] = {
#define IM_ERR_NAME_(name, msg) [name##_INDEX_] = #name,
    IM_ERRORS(IM_ERR_NAME_)
#undef IM_ERR_NAME_
};

const char *
im_strerror(int code)
{
    if (code == 0)
        return "ok";
    if (code < 0 && -code <= IM_ERR_COUNT_)
        return im_err_text[-code - 1];
    return "unknown error";
}

const char *
im_errname(int code)
{
    if (code == 0)
        return "IM_OK";
    if (code < 0 && -code <= IM_ERR_COUNT_)
        return im_err_names[-code - 1];
    return "IM_EUNKNOWN";
}

int
im_errf(struct im_err *e, int code, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int
im_errwrap(struct im_err *e, const char *fmt, ...)
{
    char prefix[IM_ERRMSG_MAX];
    char old[IM_ERRMSG_MAX];
    va_list ap;

    if (e == NULL)
        return IM_EINVAL;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* snprintf, not memcpy of sizeof old: the code's fixed text is a short
     * literal, and reading IM_ERRMSG_MAX bytes of it overran it. */
    snprintf(old, sizeof old, "%s", e->msg[0] ? e->msg : im_strerror(e->code));
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return e->code;
}

void
im_errclear(struct im_err *e)
{
    if (e != NULL) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

const char *
im_errmsg(const struct im_err *e)
{
    if (e->msg[0] != '\0')
        return e->msg;
    return im_strerror(e->code);
}

int
im_from_errno(int errnum)
{
    switch (errnum) {
    case 0: return IM_OK;
    case ENOMEM: return IM_ENOMEM;
    case ENOSPC:
    case EDQUOT: return IM_ENOSPC;
    case ENOENT: return IM_ENOTFOUND;
    case EEXIST: return IM_EEXIST;
    case EACCES:
    case EPERM: return IM_EDENIED;
    case EINVAL: return IM_EINVAL;
    case ETIMEDOUT: return IM_ETIMEDOUT;
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH: return IM_EUNREACH;
    default: return IM_EIO;
    }
}
