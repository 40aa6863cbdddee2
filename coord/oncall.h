/* oncall: who is the incident manager on call, from a rotation and its
 * overrides, at a given instant. Pure: every function takes the instant;
 * nothing reads a clock or a file (the rotation's zone is opened by the
 * caller, see tz.h). Safe to call from any thread on shared inputs.
 *
 * A rotation hands off every `length_days` local days at `handoff_s` local
 * time in its zone, starting on the local date `start`: shift k begins at
 * start + k * length_days, handoff, local; its person is
 * people[k mod people_count]. The hand-off stays at the same local time
 * across daylight-saving changes, so a daily shift lasts 23 or 25 hours on
 * those days (tz_from_local says what happens to a hand-off that falls in
 * a skipped or repeated hour).
 *
 * An override (person, [from, until)) takes precedence over the rotation.
 * Where overrides overlap, the one that began last wins (a short swap
 * inside a week-long cover), and of two that began at the same instant,
 * the later in the list.
 *
 * What oncall_at returns is a *segment*: the longest interval around the
 * instant during which the same source puts the same person on call, where
 * the source is one shift of the rotation or one override. An override
 * that cuts a shift splits it into segments; an override that spans a
 * hand-off is one segment. */
#ifndef IM_COORD_ONCALL_H
#define IM_COORD_ONCALL_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"
#include "tz.h"

/* People in one rotation: a team, not an organisation. Bounds the struct
 * (each name is PERSON_MAX + 1 bytes). */
#define ROTATION_PEOPLE_MAX 64

/* A shift lasts 1 to ROTATION_DAYS_MAX local days. Longer than a quarter
 * is not a rotation any more. */
#define ROTATION_DAYS_MAX 92

/* Overrides on one rotation. A year of daily swaps fits; more is an
 * import gone wrong. Also bounds the linear scans of oncall_at. */
#define OVERRIDES_MAX 1024

/* A local calendar date. */
struct oncall_date {
    int year;
    int month;
    int day;
};

struct oncall_rotation {
    char people[ROTATION_PEOPLE_MAX][PERSON_MAX + 1];
    size_t people_count;
    uint32_t length_days;     /* 1 = daily, 7 = weekly */
    uint32_t handoff_s;       /* local seconds after midnight: 09:00 = 32400 */
    struct oncall_date start; /* local date of the first hand-off */
    const struct tz *tz; /* borrowed: must outlive every use of the rotation */
};

struct oncall_override {
    char person[PERSON_MAX + 1];
    uint64_t from_ms;  /* inclusive */
    uint64_t until_ms; /* exclusive */
};

struct oncall_segment {
    char person[PERSON_MAX + 1];
    uint64_t start_ms; /* inclusive */
    uint64_t end_ms;   /* exclusive */
    /* The source: an override's index in the list, or -1 and the number of
     * the rotation's shift (0 = the one beginning on `start`). */
    int override_index;
    int64_t shift_index; /* -1 when override_index >= 0 */
};

/* 0 if `name` is a usable person name (non-empty, one line of UTF-8, at most
 * PERSON_MAX bytes). Messages are "PATH: problem", PATH being `path`. */
int oncall_check_person(const char *name, const char *path, struct im_err *e);

/* 0 if rot is complete and within bounds; otherwise IM_EINVAL or
 * IM_ETOOBIG with "PATH.field: problem" (e.g. "rotation.people[2]: empty
 * name"; PATH is `path`, "" for none). */
int oncall_rotation_check(const struct oncall_rotation *rot, const char *path,
                          struct im_err *e);

/* Same for one override (path names it, e.g. "overrides[3]"). */
int oncall_override_check(const struct oncall_override *o, const char *path,
                          struct im_err *e);

/* The instant shift k of rot begins. IM_EINVAL if it falls outside the
 * representable dates. */
int oncall_shift_start(const struct oncall_rotation *rot, int64_t k,
                       uint64_t *ms_out);

/* Who is on call at at_ms, with the segment that contains it. rot may be
 * NULL (a site that has only overrides). IM_ENOTFOUND if nobody is: before
 * the rotation's first hand-off, or no rotation and no override at at_ms.
 * IM_EINVAL if the inputs do not pass the checks above (they are checked:
 * the result of oncall_at is never built on a bad rotation). *out is
 * written only on success. */
int oncall_at(const struct oncall_rotation *rot,
              const struct oncall_override *ovr, size_t ovr_count,
              uint64_t at_ms, struct oncall_segment *out, struct im_err *e);

/* The segment that follows cur (which oncall_at or oncall_next returned
 * for the same inputs): oncall_at(cur->end_ms). */
int oncall_next(const struct oncall_rotation *rot,
                const struct oncall_override *ovr, size_t ovr_count,
                const struct oncall_segment *cur, struct oncall_segment *out,
                struct im_err *e);

/* The backup at at_ms: the next person in the rotation after the person of
 * the shift in force, skipping whoever is on call at at_ms (so an override
 * never makes someone their own backup). IM_ENOTFOUND if the rotation has
 * not started or nobody else is in it. */
int oncall_backup(const struct oncall_rotation *rot,
                  const struct oncall_override *ovr, size_t ovr_count,
                  uint64_t at_ms, char person[PERSON_MAX + 1],
                  struct im_err *e);

#endif
