/* oncall: see oncall.h. */
#include "oncall.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

/* Paths in messages ("sites.AMS.rotation.people[2]"). */
#define PATH_TEXT_MAX 256

static void
join(char out[PATH_TEXT_MAX], const char *path, const char *field)
{
    if (path == NULL || path[0] == '\0')
        snprintf(out, PATH_TEXT_MAX, "%s", field);
    else
        snprintf(out, PATH_TEXT_MAX, "%s.%s", path, field);
}

int
oncall_check_person(const char *name, const char *path, struct im_err *e)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0)
        return im_errf(e, IM_EINVAL, "%s: empty name", path);
    if (n > PERSON_MAX)
        return im_errf(e, IM_ETOOBIG, "%s: name longer than %d bytes", path,
                       PERSON_MAX);
    if (text_utf8_valid(name, n) != 0)
        return im_errf(e, IM_EINVAL, "%s: name is not valid UTF-8", path);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return im_errf(e, IM_EINVAL, "%s: control character in name", path);
    if (name[0] == ' ' || name[n - 1] == ' ')
        return im_errf(e, IM_EINVAL, "%s: name begins or ends with a space",
                       path);
    return 0;
}

int
oncall_rotation_check(const struct oncall_rotation *rot, const char *path,
                      struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    int rv;

    join(p, path, "people");
    if (rot->people_count == 0)
        return im_errf(e, IM_EINVAL,
                       "%s: empty list (a rotation needs "
                       "at least one person)",
                       p);
    if (rot->people_count > ROTATION_PEOPLE_MAX)
        return im_errf(e, IM_ETOOBIG, "%s: more than %d people", p,
                       ROTATION_PEOPLE_MAX);
    for (size_t i = 0; i < rot->people_count; i++) {
        char pi[PATH_TEXT_MAX + 24];
        snprintf(pi, sizeof pi, "%s[%zu]", p, i);
        if ((rv = oncall_check_person(rot->people[i], pi, e)) != 0)
            return rv;
    }
    join(p, path, "length");
    if (rot->length_days < 1 || rot->length_days > ROTATION_DAYS_MAX)
        return im_errf(e, IM_EINVAL,
                       "%s: %u days; a shift lasts 1 to %d whole days", p,
                       rot->length_days, ROTATION_DAYS_MAX);
    join(p, path, "handoff");
    if (rot->handoff_s >= TZ_DAY_S)
        return im_errf(e, IM_EINVAL, "%s: not a time of day", p);
    join(p, path, "start");
    if (!tz_date_valid(rot->start.year, rot->start.month, rot->start.day))
        return im_errf(e, IM_EINVAL, "%s: not a date between %d and %d", p,
                       TZ_YEAR_MIN, TZ_YEAR_MAX);
    join(p, path, "zone");
    if (rot->tz == NULL)
        return im_errf(e, IM_EINVAL, "%s: no time zone", p);
    uint64_t first;
    if (oncall_shift_start(rot, 0, &first) != 0)
        return im_errf(e, IM_EINVAL, "%s: the first hand-off is before 1970",
                       p);
    return 0;
}

int
oncall_override_check(const struct oncall_override *o, const char *path,
                      struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    int rv;

    join(p, path, "person");
    if ((rv = oncall_check_person(o->person, p, e)) != 0)
        return rv;
    if (o->from_ms == 0) {
        join(p, path, "from");
        return im_errf(e, IM_EINVAL, "%s: missing", p);
    }
    if (o->until_ms <= o->from_ms) {
        join(p, path, "until");
        return im_errf(e, IM_EINVAL, "%s: not after from", p);
    }
    return 0;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int
oncall_shift_start(const struct oncall_rotation *rot, int64_t k,
                   uint64_t *ms_out)
{
    /* Dates beyond TZ_YEAR_MAX are refused by tz_from_local; keep k*length
     * far from overflow before we get there. */
    if (k < -(INT64_C(1) << 32) || k > (INT64_C(1) << 32))
        return IM_EINVAL;
    int64_t days =
        tz_days_from_civil(rot->start.year, rot->start.month, rot->start.day) +
        k * (int64_t)rot->length_days;
    struct tz_civil lt;
    tz_civil_from_days(days, &lt.year, &lt.month, &lt.day);
    lt.sec_of_day = (int)rot->handoff_s;
    return tz_from_local(rot->tz, &lt, ms_out);
}

/* The shift of rot that contains at: [*start, *end), number *k.
 * IM_ENOTFOUND before the first hand-off. */
static int
base_shift(const struct oncall_rotation *rot, uint64_t at, int64_t *k_out,
           uint64_t *start_out, uint64_t *end_out, struct im_err *e)
{
    uint64_t s0, s, next;
    char when[TZ_LOCAL_TEXT_MAX];

    if (oncall_shift_start(rot, 0, &s0) != 0)
        return im_errf(e, IM_EINVAL, "rotation starts before 1970");
    if (at < s0) {
        tz_fmt_local(rot->tz, s0, when);
        return im_errf(e, IM_ENOTFOUND,
                       "the rotation has not started: its first hand-off "
                       "is %s %s",
                       when, tz_name(rot->tz));
    }
    struct tz_civil c;
    tz_to_local(rot->tz, at, &c);
    int64_t d =
        tz_days_from_civil(c.year, c.month, c.day) -
        tz_days_from_civil(rot->start.year, rot->start.month, rot->start.day);
    int64_t k = floor_div(d, rot->length_days);
    if (k < 0)
        k = 0;
    /* The local date puts k within one of the true shift (the hand-off
     * may not have happened yet today); a few steps settle it. Starts are
     * strictly increasing except across a zone's skipped day, which a step
     * walks over. */
    for (int step = 0;; step++) {
        if (step > 8)
            return im_errf(e, IM_EINVAL, "no shift contains the instant");
        if (oncall_shift_start(rot, k, &s) != 0 ||
            oncall_shift_start(rot, k + 1, &next) != 0)
            return im_errf(e, IM_EINVAL, "instant beyond year %d", TZ_YEAR_MAX);
        if (s > at && k > 0)
            k--;
        else if (next <= at)
            k++;
        else
            break;
    }
    assert(s <= at && at < next);
    *k_out = k;
    *start_out = s;
    *end_out = next;
    return 0;
}

/* The override in force at t (see oncall.h for who wins), or -1. */
static int
winner(const struct oncall_override *ovr, size_t n, uint64_t t)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (ovr[i].from_ms <= t && t < ovr[i].until_ms &&
            (best < 0 || ovr[i].from_ms >= ovr[best].from_ms))
            best = (int)i;
    }
    return best;
}

static int
beats(const struct oncall_override *ovr, size_t i, size_t w)
{
    return ovr[i].from_ms > ovr[w].from_ms ||
           (ovr[i].from_ms == ovr[w].from_ms && i > w);
}

int
oncall_at(const struct oncall_rotation *rot, const struct oncall_override *ovr,
          size_t ovr_count, uint64_t at_ms, struct oncall_segment *out,
          struct im_err *e)
{
    struct oncall_segment seg;
    int rv;

    if (rot != NULL && (rv = oncall_rotation_check(rot, "rotation", e)) != 0)
        return rv;
    if (ovr_count > OVERRIDES_MAX)
        return im_errf(e, IM_ETOOBIG, "more than %d overrides", OVERRIDES_MAX);
    for (size_t i = 0; i < ovr_count; i++) {
        char p[32];
        snprintf(p, sizeof p, "overrides[%zu]", i);
        if ((rv = oncall_override_check(&ovr[i], p, e)) != 0)
            return rv;
    }
    memset(&seg, 0, sizeof seg);

    int w = winner(ovr, ovr_count, at_ms);
    if (w >= 0) {
        /* w holds until it ends or a later override begins; it began at
         * its from, or where the last override that beat it ended. */
        uint64_t start = ovr[w].from_ms, end = ovr[w].until_ms;
        for (size_t i = 0; i < ovr_count; i++) {
            if (ovr[i].from_ms > at_ms && ovr[i].from_ms < end)
                end = ovr[i].from_ms;
            if (beats(ovr, i, (size_t)w) && ovr[i].until_ms <= at_ms &&
                ovr[i].until_ms > start)
                start = ovr[i].until_ms;
        }
        memcpy(seg.person, ovr[w].person, sizeof seg.person);
        seg.start_ms = start;
        seg.end_ms = end;
        seg.override_index = w;
        seg.shift_index = -1;
    } else {
        if (rot == NULL)
            return im_errf(e, IM_ENOTFOUND,
                           "no rotation and no override at that time");
        int64_t k;
        uint64_t start, end;
        if ((rv = base_shift(rot, at_ms, &k, &start, &end, e)) != 0)
            return rv;
        /* No override covers at_ms, so every override lies wholly before
         * or after it: the nearest edges cut the shift. */
        for (size_t i = 0; i < ovr_count; i++) {
            if (ovr[i].from_ms > at_ms && ovr[i].from_ms < end)
                end = ovr[i].from_ms;
            if (ovr[i].until_ms <= at_ms && ovr[i].until_ms > start)
                start = ovr[i].until_ms;
        }
        memcpy(seg.person, rot->people[k % (int64_t)rot->people_count],
               sizeof seg.person);
        seg.start_ms = start;
        seg.end_ms = end;
        seg.override_index = -1;
        seg.shift_index = k;
    }
    assert(seg.start_ms <= at_ms);
    assert(at_ms < seg.end_ms);
    *out = seg;
    return 0;
}

int
oncall_next(const struct oncall_rotation *rot,
            const struct oncall_override *ovr, size_t ovr_count,
            const struct oncall_segment *cur, struct oncall_segment *out,
            struct im_err *e)
{
    return oncall_at(rot, ovr, ovr_count, cur->end_ms, out, e);
}

int
oncall_backup(const struct oncall_rotation *rot,
              const struct oncall_override *ovr, size_t ovr_count,
              uint64_t at_ms, char person[PERSON_MAX + 1], struct im_err *e)
{
    struct oncall_segment seg;
    int64_t k;
    uint64_t start, end;
    int rv;

    if (rot == NULL)
        return im_errf(e, IM_ENOTFOUND, "no rotation, so no backup");
    if ((rv = oncall_at(rot, ovr, ovr_count, at_ms, &seg, e)) != 0)
        return rv;
    if ((rv = base_shift(rot, at_ms, &k, &start, &end, e)) != 0)
        return rv;
    size_t n = rot->people_count;
    for (size_t j = 1; j < n; j++) {
        const char *cand = rot->people[(size_t)((k + (int64_t)j) % (int64_t)n)];
        if (strcmp(cand, seg.person) != 0 &&
            strcmp(cand, rot->people[(size_t)(k % (int64_t)n)]) != 0) {
            memcpy(person, cand, strlen(cand) + 1);
            return 0;
        }
    }
    return im_errf(e, IM_ENOTFOUND, "nobody else in the rotation to back up %s",
                   seg.person);
}
