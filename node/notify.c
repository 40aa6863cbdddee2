/* notify: see notify.h. */
#include "notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "clock.h"
#include "incident_json.h"
#include "log.h"

extern char **environ;

#define TICK_MS_DEFAULT 200
#define ENTRY_KEY_MAX (1 + NOTIFY_ID_MAX)

static const char *
str(const char *s)
{
    return s != NULL ? s : "";
}

/* ---- rules ---- */

unsigned
notify_match(const struct cfg_notify *ch, const struct incident *before,
             const struct incident *after, const Im__Event *ev)
{
    unsigned r = 0;
    int opening = before->id[0] == '\0';

    if (ev->body == NULL || after->id[0] == '\0')
        return 0;
    if (ch->service[0] != '\0' && strcmp(ch->service, after->service) != 0)
        return 0;
    if (opening && ev->body->kind_case == IM__BODY__KIND_OPENED) {
        if (after->priority == 1)
            r |= 1u << NOTIFY_NEW_P1;
        if (after->priority == 2)
            r |= 1u << NOTIFY_NEW_P2;
    }
    if (!opening && incident_state_is_open(after->state) &&
        after->priority >= 1 && after->priority <= 2 &&
        (before->priority == 0 || after->priority < before->priority))
        r |= 1u << NOTIFY_ESCALATION;
    if (!opening && (strcmp(before->owner_site, after->owner_site) != 0 ||
                     strcmp(before->owner_manager, after->owner_manager) != 0))
        r |= 1u << NOTIFY_OWNER_CHANGE;
    if (after->major && !before->major)
        r |= 1u << NOTIFY_MAJOR;
    if (after->state == IM__STATE__STATE_RESOLVED &&
        before->state != IM__STATE__STATE_RESOLVED)
        r |= 1u << NOTIFY_RESOLVED;
    /* A page of the coordinator's escalation ladder. */
    if (ev->body->kind_case == IM__BODY__KIND_ESCALATED)
        r |= 1u << NOTIFY_ESCALATION;
    return r & ch->rules;
}

void
notify_rules_text(unsigned rules, char *out, size_t out_size)
{
    size_t used = 0;

    if (out_size == 0)
        return;
    out[0] = '\0';
    for (int i = 0; i < NOTIFY_RULES_COUNT_; i++)
        if (rules & (1u << i)) {
            int n = snprintf(out + used, out_size - used, "%s%s",
                             used ? "," : "", config_notify_rule_name(i));
            if (n < 0 || (size_t)n >= out_size - used)
                break;
            used += (size_t)n;
        }
}

int
notify_may_send(const struct incident *inc, const char *sender,
                const char *site)
{
    if (inc->id[0] == '\0')
        return 0;
    /* A page goes out from the site whose team it pages. */
    if (sender != NULL && sender[0] != '\0')
        return strcmp(sender, site) == 0;
    /* The owner site acts under the token the incident records for it:
     * 0 while provisional, the coordinator's token once assigned. */
    return strcmp(inc->owner_site, site) == 0;
}

uint64_t
notify_backoff_ms(uint64_t backoff_ms, unsigned attempts)
{
    uint64_t d = backoff_ms;

    for (unsigned i = 1; i < attempts && d < NOTIFY_BACKOFF_MS_MAX; i++)
        d *= 2;
    return d < NOTIFY_BACKOFF_MS_MAX ? d : NOTIFY_BACKOFF_MS_MAX;
}

/* ---- the outbox table ---- */

static size_t
entry_key(uint8_t out[ENTRY_KEY_MAX], char kind, const char *id)
{
    size_t n = strlen(id);
    if (n > NOTIFY_ID_MAX)
        n = NOTIFY_ID_MAX;
    out[0] = (uint8_t)kind;
    memcpy(out + 1, id, n);
    return 1 + n;
}

static int
outbox_put(struct store_txn *t, const Im__OutboxEntry *entry, struct im_err *e)
{
    uint8_t kb[ENTRY_KEY_MAX];
    size_t size = im__outbox_entry__get_packed_size(entry);
    MDB_val k = {entry_key(kb, 'Q', entry->id), kb}, v = {size, NULL};
    int rv;

    if ((rv = mdb_put(t->txn, t->s->outbox, &k, &v, MDB_RESERVE)) != 0)
        return store_mdb_error(t->s, rv, e, "queue notification");
    if (im__outbox_entry__pack(entry, v.mv_data) != size)
        abort(); /* protobuf-c disagrees with itself: a bug, not input */
    return 0;
}

static int
outbox_has(MDB_txn *txn, struct store *s, char kind, const char *id, int *out,
           struct im_err *e)
{
    uint8_t kb[ENTRY_KEY_MAX];
    MDB_val k = {entry_key(kb, kind, id), kb}, v;
    int rv = mdb_get(txn, s->outbox, &k, &v);

    *out = rv == 0;
    if (rv != 0 && rv != MDB_NOTFOUND)
        return store_mdb_error(s, rv, e, "read outbox");
    return 0;
}

/* Records that id is done (delivered or failed): no entry, a 'D' mark. */
static int
outbox_done(struct store_txn *t, const char *id, struct im_err *e)
{
    uint8_t kb[ENTRY_KEY_MAX];
    MDB_val k = {entry_key(kb, 'Q', id), kb}, v = {0, NULL};
    int rv = mdb_del(t->txn, t->s->outbox, &k, NULL);

    if (rv != 0 && rv != MDB_NOTFOUND)
        return store_mdb_error(t->s, rv, e, "remove notification");
    k.mv_size = entry_key(kb, 'D', id);
    if ((rv = mdb_put(t->txn, t->s->outbox, &k, &v, 0)) != 0)
        return store_mdb_error(t->s, rv, e, "mark notification done");
    return 0;
}

/* ---- the derive hook ---- */

static char *
payload(const struct cfg_notify *ch, const char *id, const char *rules,
        const struct incident *inc, const Im__Event *ev)
{
    char kind[TIMELINE_KIND_MAX], *text = malloc(TIMELINE_TEXT_MAX),
                                  *out = NULL;
    json_t *j = json_object(), *ji = json_object(), *je = json_object(),
           *jr = json_array();
    char rule[NOTIFY_RULES_TEXT_MAX + 1], *tok, *save = NULL;
    static const char *const prio[] = {"", "P1", "P2", "P3", "P4", "P5"};

    if (text == NULL || j == NULL || ji == NULL || je == NULL || jr == NULL)
        goto out;
    incident_event_describe(ev, kind, text, TIMELINE_TEXT_MAX);
    snprintf(rule, sizeof rule, "%s", rules);
    for (tok = strtok_r(rule, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
        json_array_append_new(jr, json_string(tok));
    json_object_set_new(j, "id", incident_json_str(id));
    json_object_set_new(j, "channel", incident_json_str(ch->name));
    json_object_set_new(j, "rules", jr);
    jr = NULL;
    json_object_set_new(ji, "id", incident_json_str(inc->id));
    json_object_set_new(ji, "title", incident_json_str(inc->title));
    json_object_set_new(ji, "service", incident_json_str(inc->service));
    json_object_set_new(ji, "priority",
                        json_string(inc->priority >= 1 && inc->priority <= 5
                                        ? prio[inc->priority]
                                        : "-"));
    json_object_set_new(ji, "major", json_boolean(inc->major));
    json_object_set_new(ji, "state",
                        json_string(incident_state_name(inc->state)));
    json_object_set_new(ji, "owner_site", incident_json_str(inc->owner_site));
    json_object_set_new(ji, "opened_at", incident_json_time(inc->opened_at_ms));
    json_object_set_new(j, "incident", ji);
    ji = NULL;
    json_object_set_new(je, "origin", incident_json_str(ev->origin));
    json_object_set_new(je, "seq", json_integer((json_int_t)ev->seq));
    json_object_set_new(je, "kind", json_string(kind));
    json_object_set_new(je, "text", incident_json_str(text));
    json_object_set_new(je, "actor", incident_json_str(ev->actor));
    json_object_set_new(je, "at", incident_json_time(HLC_MS(ev->hlc)));
    if (ev->body->kind_case == IM__BODY__KIND_ESCALATED) {
        const Im__Escalated *p = ev->body->escalated;
        json_t *jp = json_object();
        if (jp == NULL)
            goto out;
        json_object_set_new(jp, "person", incident_json_str(p->person));
        json_object_set_new(jp, "site", incident_json_str(p->site));
        json_object_set_new(jp, "level", json_integer(p->level));
        json_object_set_new(jp, "run", json_integer(p->run));
        json_object_set_new(jp, "text", incident_json_str(p->text));
        json_object_set_new(jp, "notice", incident_json_str(p->notice));
        json_object_set_new(je, "page", jp);
    }
    json_object_set_new(j, "event", je);
    je = NULL;
    out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (out != NULL && strlen(out) > NOTIFY_PAYLOAD_MAX) {
        free(out);
        out = NULL;
    }
out:
    json_decref(j);
    json_decref(ji);
    json_decref(je);
    json_decref(jr);
    free(text);
    return out;
}

int
notify_derive(void *arg, struct store_txn *t, const struct incident *before,
              const struct incident *after, const Im__Event *ev,
              struct im_err *e)
{
    struct notifier *n = arg;
    const struct config *cfg = n->cfg;
    int rv;

    if (ev->body != NULL && ev->body->kind_case == IM__BODY__KIND_NOTIFIED)
        return outbox_done(t, str(ev->body->notified->id), e);
    for (size_t i = 0; i < cfg->notify_count; i++) {
        const struct cfg_notify *ch = &cfg->notify[i];
        unsigned rules = notify_match(ch, before, after, ev);
        Im__OutboxEntry entry = IM__OUTBOX_ENTRY__INIT;
        char id[NOTIFY_ID_MAX + 1], rtext[NOTIFY_RULES_TEXT_MAX + 1];
        int done;

        if (rules == 0)
            continue;
        snprintf(id, sizeof id, "%s/%" PRIu64 "/%s", str(ev->origin), ev->seq,
                 ch->name);
        if ((rv = outbox_has(t->txn, t->s, 'D', id, &done, e)) != 0)
            return rv;
        if (done)
            continue;
        notify_rules_text(rules, rtext, sizeof rtext);
        entry.id = id;
        entry.incident = (char *)after->id;
        entry.channel = (char *)ch->name;
        entry.rules = rtext;
        if (ev->body->kind_case == IM__BODY__KIND_ESCALATED)
            entry.sender = (char *)str(ev->origin);
        entry.payload = payload(ch, id, rtext, after, ev);
        if (entry.payload == NULL)
            return im_errf(e, IM_ENOMEM, "notification %s: out of memory", id);
        rv = outbox_put(t, &entry, e);
        free(entry.payload);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* ---- delivery ---- */

enum outcome { DELIVERED, RETRY, PERMANENT };

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static enum outcome
deliver_webhook(const struct cfg_notify *ch, const Im__OutboxEntry *entry,
                char *detail, size_t detail_size)
{
    char idem[NOTIFY_ID_MAX + 32];
    struct curl_slist *headers = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;
    long status = 0;
    enum outcome o;

    if (c == NULL) {
        snprintf(detail, detail_size, "curl: cannot start");
        return RETRY;
    }
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", entry->id);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, idem);
    curl_easy_setopt(c, CURLOPT_URL, ch->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, entry->payload);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(entry->payload));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "incident-mesh-notify/1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ch->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ch->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(detail, detail_size, "%s", curl_easy_strerror(rc));
        o = RETRY;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        snprintf(detail, detail_size, "HTTP %ld", status);
        if (status >= 200 && status < 300)
            o = DELIVERED;
        else if (status >= 500 || status == 408 || status == 429)
            o = RETRY;
        else
            o = PERMANENT; /* the receiver refuses it: retrying cannot help */
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return o;
}

static enum outcome
deliver_command(const struct cfg_notify *ch, const Im__OutboxEntry *entry,
                char *detail, size_t detail_size)
{
    char *argv[] = {"sh", "-c", (char *)ch->command, NULL};
    char env_id[NOTIFY_ID_MAX + 16], env_inc[INCIDENT_ID_MAX + 16],
        env_ch[INTEGRATION_NAME_MAX + 16];
    size_t envc = 0, payload_size = strlen(entry->payload);
    char **envp;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, def;
    int fds[2], status = 0, devnull;
    pid_t pid;
    uint64_t deadline;

    while (environ[envc] != NULL)
        envc++;
    if ((envp = calloc(envc + 4, sizeof *envp)) == NULL) {
        snprintf(detail, detail_size, "out of memory");
        return RETRY;
    }
    memcpy(envp, environ, envc * sizeof *envp);
    snprintf(env_id, sizeof env_id, "IM_NOTIFY_ID=%s", entry->id);
    snprintf(env_inc, sizeof env_inc, "IM_INCIDENT=%s", entry->incident);
    snprintf(env_ch, sizeof env_ch, "IM_CHANNEL=%s", entry->channel);
    envp[envc] = env_id;
    envp[envc + 1] = env_inc;
    envp[envc + 2] = env_ch;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        free(envp);
        snprintf(detail, detail_size, "pipe: %s", strerror(errno));
        return RETRY;
    }
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    if (devnull >= 0)
        posix_spawn_file_actions_adddup2(&fa, devnull, 1);
    /* The node blocks SIGINT/SIGTERM for sigwait and ignores SIGPIPE; the
     * command starts with neither. */
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    status = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[0]);
    if (devnull >= 0)
        close(devnull);
    free(envp);
    if (status != 0) {
        close(fds[1]);
        snprintf(detail, detail_size, "spawn /bin/sh: %s", strerror(status));
        return RETRY;
    }
    /* The payload (<= NOTIFY_PAYLOAD_MAX) fits the pipe's buffer: the
     * write does not wait for the command to read. */
    if (write(fds[1], entry->payload, payload_size) != (ssize_t)payload_size)
        log_debug("notify: %s: the command did not take all of stdin",
                  entry->channel);
    close(fds[1]);
    deadline = clock_mono_ms() + ch->timeout_ms;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            snprintf(detail, detail_size, "waitpid: %s", strerror(errno));
            return RETRY;
        }
        if (clock_mono_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(detail, detail_size, "timed out after %" PRIu64 " ms",
                     ch->timeout_ms);
            return RETRY;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        snprintf(detail, detail_size, "exit 0");
        return DELIVERED;
    }
    if (WIFEXITED(status))
        snprintf(detail, detail_size, "exit %d", WEXITSTATUS(status));
    else
        snprintf(detail, detail_size, "killed by signal %d",
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return RETRY;
}

/* ---- recording outcomes ---- */

struct outcome_job {
    Im__OutboxEntry *entry;
    int final, delivered;
    unsigned attempts;
    uint64_t next_at_ms;
    char detail[256];
};

static int
outcome_step(struct commit_step *cs, void *arg)
{
    struct outcome_job *j = arg;
    struct im_err e = {0};
    int rv, done;

    /* A NotificationSent for it may have been folded meanwhile (from the
     * owner before us, after a failover): then nothing is left to do. */
    if ((rv = outbox_has(cs->t->txn, cs->t->s, 'D', j->entry->id, &done, &e)) !=
        0)
        return rv;
    if (done)
        return 0;
    if (j->final) {
        Im__Body body = IM__BODY__INIT;
        Im__NotificationSent ns = IM__NOTIFICATION_SENT__INIT;
        ns.id = j->entry->id;
        ns.channel = j->entry->channel;
        ns.rules = j->entry->rules;
        ns.delivered = j->delivered;
        ns.attempts = j->attempts;
        ns.detail = j->detail;
        body.kind_case = IM__BODY__KIND_NOTIFIED;
        body.notified = &ns;
        /* The derive hook removes the entry with this event. */
        rv = commit_append(cs, j->entry->incident, &body, NULL, &e);
        if (rv == 0)
            return 0;
        if (!commit_is_refusal(rv))
            return rv;
        log_warn("notify: cannot record %s: %s; dropping it", j->entry->id,
                 im_errmsg(&e));
        return outbox_done(cs->t, j->entry->id, &e);
    }
    char *last_error = j->entry->last_error;
    j->entry->attempts = j->attempts;
    j->entry->next_at_ms = j->next_at_ms;
    j->entry->last_error = j->detail;
    rv = outbox_put(cs->t, j->entry, &e);
    j->entry->last_error = last_error; /* protobuf-c frees its own */
    return rv;
}

/* ---- the pass ---- */

static int
channel_index(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->notify_count; i++)
        if (strcmp(cfg->notify[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Collects due entries (decoded; the caller frees them). */
static size_t
collect_due(struct notifier *n, uint64_t now, Im__OutboxEntry **due)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    struct im_err e = {0};
    size_t count = 0;
    uint64_t queued = 0;
    int rv;

    if (store_read_begin(n->store, &txn, &e) != 0)
        return 0;
    if (mdb_cursor_open(txn, n->store->outbox, &cur) != 0) {
        store_read_end(txn);
        return 0;
    }
    k.mv_data = "Q";
    k.mv_size = 1;
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rv == 0;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Im__OutboxEntry *entry;
        if (k.mv_size < 1 || ((const uint8_t *)k.mv_data)[0] != 'Q')
            break;
        queued++;
        if (count == NOTIFY_PASS_MAX)
            continue;
        entry = im__outbox_entry__unpack(NULL, v.mv_size, v.mv_data);
        if (entry == NULL) {
            log_warn("notify: an outbox entry does not decode; skipped");
            continue;
        }
        if (entry->next_at_ms > now) {
            im__outbox_entry__free_unpacked(entry, NULL);
            continue;
        }
        due[count++] = entry;
    }
    mdb_cursor_close(cur);
    store_read_end(txn);
    atomic_store(&n->queued, queued);
    return count;
}

/* The site sends if it is the sender (notify_may_send) and the owner gate
 * (the coordinator lease, node/coordlink.c) lets it act now. */
static int
may_send(struct notifier *n, const Im__OutboxEntry *entry)
{
    struct incident *inc = malloc(sizeof *inc);
    struct im_err e = {0};
    MDB_txn *txn;
    int ok = 0;

    if (inc != NULL && store_read_begin(n->store, &txn, &e) == 0) {
        if (store_incident_get(txn, n->store, entry->incident, inc, &e) == 0)
            ok = notify_may_send(inc, entry->sender, n->store->site);
        store_read_end(txn);
        if (ok && n->store->owner_gate != NULL &&
            n->store->owner_gate(n->store->owner_gate_arg, inc, &e) != 0)
            ok = 0;
    }
    free(inc);
    return ok;
}

int
notify_run_once(struct notifier *n)
{
    Im__OutboxEntry **due = calloc(NOTIFY_PASS_MAX, sizeof *due);
    uint64_t now = clock_wall_ms();
    size_t count;
    int attempted = 0;

    if (due == NULL)
        return 0;
    if (now < n->paused_until_ms) {
        free(due);
        return 0;
    }
    count = collect_due(n, now, due);
    for (size_t i = 0; i < count; i++) {
        Im__OutboxEntry *entry = due[i];
        int ch = channel_index(n->cfg, entry->channel);
        struct outcome_job job = {.entry = entry};
        enum outcome o;
        int rv;

        pthread_mutex_lock(&n->mu);
        int stopping = n->stopping;
        pthread_mutex_unlock(&n->mu);
        if (stopping)
            break;
        if (!may_send(n, entry)) {
            atomic_fetch_add(&n->not_owner, 1);
            continue;
        }
        job.attempts = entry->attempts + 1;
        size_t u = 0;
        while (u < n->unrecorded_count &&
               strcmp(n->unrecorded[u].id, entry->id) != 0)
            u++;
        if (u < n->unrecorded_count) {
            /* Sent before the store refused its record: record it now,
             * never send it again. */
            o = n->unrecorded[u].delivered ? DELIVERED : PERMANENT;
            job.attempts = n->unrecorded[u].attempts;
            snprintf(job.detail, sizeof job.detail, "%s",
                     n->unrecorded[u].detail);
            n->unrecorded[u] = n->unrecorded[--n->unrecorded_count];
        } else if (ch < 0) {
            /* The channel left the config: nobody to deliver to. */
            o = PERMANENT;
            snprintf(job.detail, sizeof job.detail,
                     "channel %s is no longer configured", entry->channel);
            job.attempts = entry->attempts > 0 ? entry->attempts : 1;
        } else {
            const struct cfg_notify *c = &n->cfg->notify[ch];
            atomic_fetch_add(&n->attempts[ch], 1);
            attempted++;
            o = c->type == NOTIFY_WEBHOOK
                    ? deliver_webhook(c, entry, job.detail, sizeof job.detail)
                    : deliver_command(c, entry, job.detail, sizeof job.detail);
            if (o == RETRY && job.attempts >= c->attempts)
                o = PERMANENT;
            if (o == RETRY)
                job.next_at_ms = clock_wall_ms() +
                                 notify_backoff_ms(c->backoff_ms, job.attempts);
        }
        job.final = o != RETRY;
        job.delivered = o == DELIVERED;
        rv = commit_run(n->commit, "notify", outcome_step, &job);
        if (rv != 0) {
            log_warn("notify: %s: recording the outcome failed (%s); pausing "
                     "%d ms",
                     entry->id, im_strerror(rv), NOTIFY_STORE_PAUSE_MS);
            n->paused_until_ms = clock_wall_ms() + NOTIFY_STORE_PAUSE_MS;
            if (job.final && n->unrecorded_count < NOTIFY_UNRECORDED_MAX) {
                struct notify_unrecorded *r =
                    &n->unrecorded[n->unrecorded_count++];
                snprintf(r->id, sizeof r->id, "%s", entry->id);
                r->delivered = job.delivered;
                r->attempts = job.attempts;
                snprintf(r->detail, sizeof r->detail, "%s", job.detail);
            }
            i = count; /* the rest waits for the pause */
        } else if (job.final) {
            if (atomic_load(&n->queued) > 0)
                atomic_fetch_sub(&n->queued, 1);
        }
        if (rv == 0 && ch >= 0 && job.final) {
            atomic_fetch_add(job.delivered ? &n->delivered[ch] : &n->failed[ch],
                             1);
            if (!job.delivered)
                log_warn("notify: %s to %s failed after %u attempts: %s",
                         entry->id, entry->channel, job.attempts, job.detail);
        }
    }
    for (size_t i = 0; i < count; i++)
        im__outbox_entry__free_unpacked(due[i], NULL);
    free(due);
    return attempted;
}

static void *
notifier_main(void *arg)
{
    struct notifier *n = arg;

    pthread_mutex_lock(&n->mu);
    while (!n->stopping) {
        struct timespec ts;
        pthread_mutex_unlock(&n->mu);
        notify_run_once(n);
        pthread_mutex_lock(&n->mu);
        if (n->stopping)
            break;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(n->tick_ms % 1000) * 1000000L;
        ts.tv_sec += (time_t)(n->tick_ms / 1000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- metrics ---- */

static void
collect(void *arg, struct metrics_out *o)
{
    struct notifier *n = arg;

    metrics_family(o, "im_notifications_total", "counter",
                   "Notifications finished, by channel and outcome.");
    for (size_t i = 0; i < n->cfg->notify_count; i++) {
        metrics_sample(o, "im_notifications_total",
                       atomic_load(&n->delivered[i]), "channel",
                       n->cfg->notify[i].name, "outcome", "delivered", NULL);
        metrics_sample(o, "im_notifications_total", atomic_load(&n->failed[i]),
                       "channel", n->cfg->notify[i].name, "outcome", "failed",
                       NULL);
    }
    metrics_family(o, "im_notification_attempts_total", "counter",
                   "Delivery attempts, by channel.");
    for (size_t i = 0; i < n->cfg->notify_count; i++)
        metrics_sample(o, "im_notification_attempts_total",
                       atomic_load(&n->attempts[i]), "channel",
                       n->cfg->notify[i].name, NULL);
    metrics_family(o, "im_notifications_not_owner_total", "counter",
                   "Due notifications left to the owning site.");
    metrics_sample(o, "im_notifications_not_owner_total",
                   atomic_load(&n->not_owner), NULL);
    metrics_family(o, "im_notify_outbox_entries", "gauge",
                   "Notifications waiting in the outbox (last pass).");
    metrics_sample(o, "im_notify_outbox_entries", atomic_load(&n->queued),
                   NULL);
}

/* ---- lifecycle ---- */

void
notify_init(struct notifier *n, const struct config *cfg, struct store *s,
            struct committer *c, struct metrics *m)
{
    memset(n, 0, sizeof *n);
    n->cfg = cfg;
    n->store = s;
    n->commit = c;
    n->tick_ms = TICK_MS_DEFAULT;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if (m != NULL && metrics_register(m, collect, n) != 0)
        log_warn("notify: cannot register metrics");
}

int
notify_start(struct notifier *n, struct im_err *e)
{
    int rv;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return im_errf(e, IM_ENOMEM, "notify: curl_global_init failed");
    if ((rv = pthread_create(&n->thread, NULL, notifier_main, n)) != 0) {
        curl_global_cleanup();
        return im_errf(e, IM_ENOMEM, "notify: start thread: %s", strerror(rv));
    }
    n->started = 1;
    return 0;
}

void
notify_stop(struct notifier *n)
{
    pthread_mutex_lock(&n->mu);
    n->stopping = 1;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    if (n->started) {
        pthread_join(n->thread, NULL);
        curl_global_cleanup();
        n->started = 0;
    }
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
}
