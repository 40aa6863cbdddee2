/* bounds: every limit in Incident Mesh, with its reason.
 *
 * Exceeding a limit is an error (IM_ETOOBIG) with a message naming the limit,
 * never a crash or a silent truncation. String limits count bytes of UTF-8,
 * excluding the terminating NUL; fixed buffers are sized LIMIT + 1. */
#ifndef IM_BOUNDS_H
#define IM_BOUNDS_H

/* A site code: 2..8 of [A-Z0-9], starting with a letter ("AMS", "NYC2").
 * Short because it prefixes every incident id and every event key. */
#define SITE_CODE_MIN 2
#define SITE_CODE_MAX 8

/* "<SITE>-<n>" with n < 2^64: 8 + 1 + 20. */
#define INCIDENT_ID_MAX 32

/* Human text fields. Titles are one line on a pager; descriptions, notes and
 * resolution notes are a few paragraphs: anything longer belongs in a linked
 * document. Bounded so that one event always fits EVENT_SIZE_MAX. */
#define TITLE_MAX 200
#define DESCRIPTION_MAX 4096
#define NOTE_MAX 4096
#define REASON_MAX 1024
#define PUBLIC_UPDATE_MAX 2048
#define RESOLUTION_NOTES_MAX 4096

/* Names and short identifiers: services, categories, people, codes. */
#define SERVICE_MAX 64
#define CATEGORY_MAX 64
#define PERSON_MAX 64
#define RESOLUTION_CODE_MAX 64
#define OPERATOR_NAME_MAX 64

/* Subject-matter experts on one incident. */
#define SMES_MAX 16

/* Sites affected by one major incident. */
#define AFFECTS_MAX 64

/* One encoded event. The text limits above sum to well under this. */
#define EVENT_SIZE_MAX 16384

/* Events one incident may hold. A timeline longer than this is a runaway
 * automation, not an incident; alert storms are summarised, not appended. */
#define INCIDENT_EVENTS_MAX 100000

/* Operations in one signed request: bounds the work one signature buys and
 * the time one request may hold a commit batch. */
#define REQ_OPS_MAX 256

/* One request on the node API: REQ_OPS_MAX events plus framing. */
#define REQ_SIZE_MAX (REQ_OPS_MAX * EVENT_SIZE_MAX + 65536)

/* One reply: a list of LIST_LIMIT_MAX summaries (each under 1 KiB), or one
 * incident with a timeline of INCIDENT_EVENTS_MAX entries. */
#define REPLY_SIZE_MAX (128 * 1024 * 1024)

/* Incidents in one list reply. */
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 100000

/* Requests accepted beyond what the node has answered: bounds memory under
 * overload; past it the node answers IM_EBUSY at once. */
#define COMMIT_QUEUE_MAX 16384

/* Operations folded into one LMDB write transaction (one fsync). */
#define COMMIT_BATCH_OPS_MAX 8192

/* Concurrent requests a node serves (NNG rep contexts). */
#define API_CONTEXTS 256

/* A request whose timestamp is further than this from the node's clock is
 * refused: bounds how long a captured request stays usable. */
#define CLOCK_SKEW_MS_MAX (5 * 60 * 1000)

/* Configuration. */
#define SITES_MAX 64
#define OPERATORS_MAX 1024
#define CONFIG_LINE_MAX 1024
#define URL_MAX 256
#define CLUSTER_NAME_MAX 64
#define PATH_MAX_IM 1024

/* Coordinator replicas of one cluster (one per site is typical; they
 * share nothing but etcd, so more only cost heartbeats) and their ids. */
#define COORDINATORS_MAX 16
#define COORD_ID_MAX 32

/* The etcd section: the endpoint list as written (a config line), and the
 * key prefix every coordinator key lives under. */
#define ETCD_ENDPOINTS_TEXT_MAX CONFIG_LINE_MAX
#define ETCD_PREFIX_MAX 128

/* A site's lease (DESIGN.md §5): a site silent this long is declared down,
 * and a node acts as owner only while it holds one. Default 3 s; the floor
 * keeps a heartbeat every lease/3 above a few per second per site, the
 * ceiling keeps failover "within seconds". */
#define COORD_LEASE_MS_DEFAULT 3000
#define COORD_LEASE_MS_MIN 500
#define COORD_LEASE_MS_MAX 60000

/* The shortest acknowledgement window a coordinator lets an escalation
 * level have ([coord] min_ack). A person must be able to reach a keyboard,
 * so the default is a minute; drills and tests may lower it to the floor,
 * below which a ladder would page faster than heartbeats (lease/3) carry
 * the pages to the sites. */
#define COORD_MIN_ACK_MS_DEFAULT (60 * 1000)
#define COORD_MIN_ACK_MS_FLOOR (5 * 1000)
#define COORD_MIN_ACK_MS_MAX (60 * 60 * 1000)

/* Incidents one heartbeat lists (its counts cover the rest): bounds its
 * size (about 100 bytes each) and the etcd reads one heartbeat costs. */
#define COORD_HEARTBEAT_INCIDENTS_MAX 1024

/* One schedule document (coord/schedule.h). A thousand overrides on each
 * of many sites fit easily; more is an import gone wrong. It travels in
 * one operator request. */
#define SCHEDULE_TEXT_MAX (4 * 1024 * 1024)
_Static_assert(SCHEDULE_TEXT_MAX + 4096 <= REQ_SIZE_MAX,
               "a schedule fits one request");

/* The coordinator leader's etcd lease (whole seconds: etcd's unit). A dead
 * leader is replaced about this long after it stopped renewing; etcd
 * refuses less than ~1.5 x its election timeout (2 s with its defaults). */
#define COORD_LEADER_TTL_S_DEFAULT 2
#define COORD_LEADER_TTL_S_MAX 60

/* LMDB map: virtual address space reserved for the store. Pages are only
 * allocated on disk as written; this is a ceiling, not a reservation. */
#define MAP_SIZE_DEFAULT (64ULL * 1024 * 1024 * 1024)
#define MAP_SIZE_MIN (1ULL * 1024 * 1024)

/* One secure-channel frame's payload. A replication message carries up to
 * ~8 MiB of events and a node API request up to REQ_SIZE_MAX; twice the
 * former leaves room without letting one frame pin much memory. Links set
 * their own tighter receive limit (NNG_OPT_RECVMAXSZ) below this. API replies
 * (REPLY_SIZE_MAX) over a remote channel must be paged to fit. */
#define CHAN_PLAIN_MAX (16 * 1024 * 1024)

_Static_assert(REQ_SIZE_MAX <= CHAN_PLAIN_MAX, "a request fits one frame");
_Static_assert(TITLE_MAX + DESCRIPTION_MAX + SERVICE_MAX + 2 * CATEGORY_MAX +
                   INCIDENT_ID_MAX + OPERATOR_NAME_MAX + 1024 <=
               EVENT_SIZE_MAX,
               "an opening event fits EVENT_SIZE_MAX");
_Static_assert(RESOLUTION_CODE_MAX + RESOLUTION_NOTES_MAX + REASON_MAX +
                   INCIDENT_ID_MAX + OPERATOR_NAME_MAX + 1024 <=
               EVENT_SIZE_MAX,
               "a transition event fits EVENT_SIZE_MAX");

/* ---- HTTP: alert intake, the JSON API, metrics, status page ---- */

/* An intake body (PagerDuty refuses events over 512 KB; so do we, with
 * 413 and a JSON error). */
#define HTTP_BODY_MAX (512 * 1024)
/* What NNG reads of a body before our handler sees it: a larger
 * Content-Length is refused by NNG itself (400) without reading it, which
 * bounds memory per connection. Between the two limits we answer 413. */
#define HTTP_BODY_READ_MAX (1024 * 1024)
/* HTTP requests being handled at once (parsed, waiting for their commit
 * or their read): past it the node answers 429 at once. */
#define HTTP_INFLIGHT_MAX 1024
/* Request URI (path and query). */
#define HTTP_URI_MAX 2048

/* PagerDuty Events API v2 limits: dedup_key up to 255 characters,
 * payload.summary up to 1024. */
#define DEDUP_KEY_MAX 255
/* An alert key as stored: a PagerDuty dedup_key or an Alertmanager
 * groupKey (which lists the group's labels, so it may be long). Index keys
 * hash it, so LMDB's key size limit does not bind. */
#define ALERT_KEY_MAX 1024
#define ALERT_SUMMARY_MAX 1024
/* source, component, group, class, client; alert label values. */
#define ALERT_FIELD_MAX 255
/* links[].href, images[].src, client_url, generatorURL. */
#define ALERT_URL_MAX 2048
#define ALERT_LINKS_MAX 32
/* Alerts in one Alertmanager notification (the body limit binds first
 * for typical alerts), and in one AlertOccurrence/AlertResolved event. */
#define AM_ALERTS_MAX 4096
#define ALERT_REFS_PER_EVENT_MAX 128
/* Alertmanager fingerprints are 16 hex digits; room for other senders. */
#define AM_FINGERPRINT_MAX 64
/* Labels or annotations of one alert. */
#define AM_LABELS_MAX 128

/* Pending occurrence keys one flush pass summarises (the rest wait for
 * the next pass): bounds one flush transaction. */
#define ALERT_FLUSH_PASS_MAX 1024

/* Metric families registered by node modules (one callback each), and
 * the size of one /metrics answer. */
#define METRICS_COLLECTORS_MAX 32
#define METRICS_TEXT_MAX (4 * 1024 * 1024)

/* The status page: incidents shown (open major ones, then those resolved
 * in the last STATUS_RECENT_MS), public updates per incident (latest
 * first), and services listed. */
#define STATUS_INCIDENTS_MAX 50
#define STATUS_UPDATES_MAX 20
#define STATUS_SERVICES_MAX 200
#define STATUS_RECENT_MS (24ULL * 3600 * 1000)

/* A notification id ("<origin>/<seq>/<channel>") and its rules list. */
#define NOTIFY_ID_MAX (SITE_CODE_MAX + 1 + 20 + 1 + INTEGRATION_NAME_MAX)

/* An escalation page's notice id, "<incident>/<n>" (Escalated.notice), and
 * its text (the coordinator's sentence; coord/escalate.h writes <= 512). */
#define NOTICE_ID_MAX (INCIDENT_ID_MAX + 1 + 20)
#define PAGE_TEXT_MAX 1024
#define NOTIFY_RULES_TEXT_MAX 128

/* Specific errors reported for one bad request, and the length of each. */
#define INTAKE_ERRORS_MAX 16
#define INTAKE_ERROR_MAX 256

/* Alert storms: at most one occurrence summary event per alert key per
 * interval (docs/http-api.md, "Alert storms"). */
#define ALERT_SUMMARY_INTERVAL_MS_DEFAULT (60 * 1000)

/* Integrations ([integration NAME]) and notification channels
 * ([notify NAME]) in one config; tokens and routing keys are secrets of
 * at least INTEGRATION_KEY_MIN characters. */
#define INTEGRATIONS_MAX 64
#define INTEGRATION_NAME_MAX 64
#define INTEGRATION_KEY_MIN 16
#define INTEGRATION_KEY_MAX 128
#define NOTIFY_CHANNELS_MAX 32
/* Delivery attempts for one notification, and the back-off ceiling. */
#define NOTIFY_ATTEMPTS_MAX 20
#define NOTIFY_BACKOFF_MS_MAX (10 * 60 * 1000)
/* One notification's JSON. */
#define NOTIFY_PAYLOAD_MAX 16384
/* Notifications waiting in the outbox that one pass of the notifier
 * looks at: bounds the work of one pass, not the outbox. */
#define NOTIFY_PASS_MAX 256

_Static_assert(HTTP_BODY_MAX < HTTP_BODY_READ_MAX, "413 is ours to answer");
_Static_assert(ALERT_REFS_PER_EVENT_MAX * (AM_FINGERPRINT_MAX + 16) +
                   ALERT_KEY_MAX + ALERT_SUMMARY_MAX + 3 * ALERT_FIELD_MAX +
                   INTEGRATION_NAME_MAX + 1024 <=
               EVENT_SIZE_MAX,
               "an alert event fits EVENT_SIZE_MAX");

#endif
