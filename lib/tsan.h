/* tsan: annotations for hand-offs ThreadSanitizer cannot see.
 *
 * NNG is not built with TSan, so when we give an aio to NNG on one thread
 * and NNG runs its callback on another, TSan sees no happens-before edge and
 * reports the callback's reads of our state as races. NNG guarantees that
 * edge (the callback runs after the operation was submitted); these macros
 * state it to TSan at exactly the hand-off points, so that every other
 * access stays checked. They compile to nothing outside TSan builds. */
#ifndef IM_TSAN_H
#define IM_TSAN_H

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_RELEASE(p) ((void)(p))
#define TSAN_ACQUIRE(p) ((void)(p))
#endif

#endif
