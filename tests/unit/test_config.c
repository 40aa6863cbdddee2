/* Unit tests for lib/config: a valid file and what it yields (defaults,
 * lookups, relative paths resolved against the file's directory), and every
 * error of config.c: each must be IM_ECONFIG and read "FILE:LINE: problem"
 * (or "FILE: problem" for what belongs to no line), naming the right line. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char dir[256];
static struct config *cfg; /* large: allocated once */
/* Pinned public keys in their text form: two sites, two operators. */
static char S1[KEY_PUB_TEXT_MAX], S2[KEY_PUB_TEXT_MAX], O1[KEY_PUB_TEXT_MAX],
    O2[KEY_PUB_TEXT_MAX];
static uint8_t S1_pk[KEY_PUB_BYTES], O2_pk[KEY_PUB_BYTES];

static int
contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* A text built with printf, in a static buffer big enough for the largest
 * generated file. */
static char *text_of(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char textbuf[256 * 1024];

static char *
text_of(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(textbuf, sizeof textbuf, fmt, ap);
    va_end(ap);
    return textbuf;
}

/* The smallest valid file, as a suffix for error cases that need the rest
 * to be right: lines 1..6. */
#define SITE_AND_OP                                                            \
    "[site AMS]\n"                                                             \
    "pubkey = %s\n"                                                            \
    "[operator alice]\n"                                                       \
    "pubkey = %s\n"

/* Parses text as "t.conf" and checks that it fails with a message that
 * starts "t.conf:LINE: " (or "t.conf: " for line 0) and contains want. */
static int
fails_(const char *text, int line, const char *want, int src_line)
{
    struct im_err e = {0};
    char prefix[64];
    int rv = config_parse(cfg, "t.conf", text, &e);

    if (line > 0)
        snprintf(prefix, sizeof prefix, "t.conf:%d: ", line);
    else
        snprintf(prefix, sizeof prefix, "t.conf: ");
    if (rv != IM_ECONFIG || e.code != IM_ECONFIG ||
        strncmp(e.msg, prefix, strlen(prefix)) != 0 || !contains(e.msg, want)) {
        fprintf(stderr,
                "%s:%d: want IM_ECONFIG '%s...%s', got %d '%s'\n"
                "  for text:\n%.600s\n",
                __FILE__, src_line, prefix, want, rv, e.msg, text);
        return 0;
    }
    return 1;
}
#define FAILS(text, line, want) CHECK(fails_((text), (line), (want), __LINE__))

static int
parses_(const char *text, int src_line)
{
    struct im_err e = {0};
    int rv = config_parse(cfg, "t.conf", text, &e);
    if (rv != 0)
        fprintf(stderr, "%s:%d: want success, got %d '%s'\n", __FILE__,
                src_line, rv, e.msg);
    return rv == 0;
}
#define PARSES(text) CHECK(parses_((text), __LINE__))

TEST(valid_file)
{
    struct im_err e = {0};
    const char *text =
        text_of("# Amsterdam's node\n"            /* 1 */
                "; another comment\n"             /* 2 */
                "\n"                              /* 3 */
                "[node]\n"                        /* 4 */
                "site = ams\n"                    /* 5: upper-cased */
                "data = /var/lib/im/ams\n"        /* 6 */
                "listen = tcp://127.0.0.1:7401\n" /* 7 */
                "key = /etc/im/ams.key\n"         /* 8 */
                "map_size = 2GiB\n"               /* 9 */
                "\n"                              /* 10 */
                "  [ site AMS ]  \n"              /* 11: spaces are fine */
                "name = Amsterdam\n"              /* 12 */
                "peer = tcp://10.0.0.1:7500\n"    /* 13 */
                "\tpubkey   =   %s   \n" /* 14: indented, not a continuation */
                "[site nyc2]\n"          /* 15 */
                "name = New York 2\n"    /* 16 */
                "pubkey = %s\n"          /* 17 */
                "[operator alice]\n"     /* 18 */
                "pubkey = %s\n"          /* 19 */
                "role = admin\n"         /* 20 */
                "[operator bob@ops.example]\n" /* 21 */
                "pubkey = %s\n", /* 22: role defaults to responder */
                S1, S2, O1, O2);

    REQUIRE(config_parse(cfg, "t.conf", text, &e) == 0);
    CHECK_EQ_STR(cfg->path, "t.conf");
    CHECK_EQ_STR(cfg->node.site, "AMS");
    CHECK_EQ_STR(cfg->node.data, "/var/lib/im/ams");
    CHECK_EQ_STR(cfg->node.listen, "tcp://127.0.0.1:7401");
    CHECK_EQ_STR(cfg->node.key, "/etc/im/ams.key");
    CHECK(cfg->node.map_size == 2ULL << 30);
    CHECK_EQ_INT(cfg->node.line, 4);

    REQUIRE(cfg->sites_count == 2);
    CHECK_EQ_STR(cfg->sites[0].code, "AMS");
    CHECK_EQ_STR(cfg->sites[0].name, "Amsterdam");
    CHECK_EQ_STR(cfg->sites[0].peer, "tcp://10.0.0.1:7500");
    CHECK(cfg->sites[0].has_pk);
    CHECK(memcmp(cfg->sites[0].pk, S1_pk, KEY_PUB_BYTES) == 0);
    CHECK_EQ_INT(cfg->sites[0].line, 11);
    CHECK_EQ_STR(cfg->sites[1].code, "NYC2");
    CHECK_EQ_STR(cfg->sites[1].name, "New York 2");
    CHECK_EQ_STR(cfg->sites[1].peer, "");
    CHECK_EQ_INT(cfg->sites[1].line, 15);

    REQUIRE(cfg->operators_count == 2);
    CHECK_EQ_STR(cfg->operators[0].name, "alice");
    CHECK(cfg->operators[0].role == OP_ROLE_ADMIN);
    CHECK_EQ_INT(cfg->operators[0].line, 18);
    CHECK_EQ_STR(cfg->operators[1].name, "bob@ops.example");
    CHECK(cfg->operators[1].role == OP_ROLE_RESPONDER);

    /* Lookups. */
    CHECK(config_site(cfg, "AMS") == &cfg->sites[0]);
    CHECK(config_site(cfg, "NYC2") == &cfg->sites[1]);
    CHECK(config_site(cfg, "nyc2") == NULL); /* codes are stored upper */
    CHECK(config_site(cfg, "SIN") == NULL);
    CHECK(config_operator_by_key(cfg, O2_pk) == &cfg->operators[1]);
    CHECK(config_operator_by_key(cfg, S1_pk) == NULL); /* a site, not an op */
    CHECK_EQ_STR(config_role_name(OP_ROLE_ADMIN), "admin");
    CHECK_EQ_STR(config_role_name(OP_ROLE_RESPONDER), "responder");
    CHECK_EQ_STR(config_role_name(OP_ROLE_VIEWER), "viewer");
    CHECK_EQ_STR(config_role_name((enum op_role)99), "unknown");
}

TEST(defaults)
{
    struct im_err e = {0};
    const char *text =
        text_of("[node]\nsite = AMS\ndata = d\n" SITE_AND_OP, S1, O1);
    REQUIRE(config_parse(cfg, "t.conf", text, &e) == 0);
    CHECK_EQ_STR(cfg->node.listen, CONFIG_LISTEN_DEFAULT);
    CHECK(cfg->node.map_size == MAP_SIZE_DEFAULT);
    /* No 'key': the site key lives in the data directory. */
    CHECK_EQ_STR(cfg->node.key, "d/site.key");
    CHECK_EQ_STR(cfg->sites[0].name, "");
    CHECK(cfg->operators[0].role == OP_ROLE_RESPONDER);

    /* Windows line endings, no final newline, an ipc:// address, the other
     * roles, the map_size units and its minimum. */
    PARSES(text_of("[node]\r\nsite = AMS\r\ndata = d\r\n"
                   "listen = ipc:///run/im/ams.sock\r\nmap_size = 1MiB\r\n"
                   "[site AMS]\r\npubkey = %s\r\n"
                   "[operator alice]\r\npubkey = %s\r\nrole = viewer",
                   S1, O1));
    CHECK_EQ_STR(cfg->node.listen, "ipc:///run/im/ams.sock");
    CHECK(cfg->node.map_size == MAP_SIZE_MIN);
    CHECK(cfg->operators[0].role == OP_ROLE_VIEWER);
    static const struct {
        const char *text;
        uint64_t size;
    } sizes[] = {{"1048576", 1048576}, {"1024KiB", 1048576},
                 {"3MiB", 3ULL << 20}, {"64GiB", 64ULL << 30},
                 {"2TiB", 2ULL << 40}, {"16777215TiB", 16777215ULL << 40}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        PARSES(text_of("[node]\nsite = AMS\ndata = d\nmap_size = %s\n"
                       "[site AMS]\npubkey = %s\n"
                       "[operator alice]\npubkey = %s\nrole = responder\n",
                       sizes[i].text, S1, O1));
        CHECK(cfg->node.map_size == sizes[i].size);
    }
    /* A comment line of exactly CONFIG_LINE_MAX characters is fine. */
    char line[CONFIG_LINE_MAX + 1];
    memset(line, 'x', CONFIG_LINE_MAX);
    line[0] = '#';
    line[CONFIG_LINE_MAX] = '\0';
    PARSES(text_of("%s\n[node]\nsite = AMS\ndata = d\n" SITE_AND_OP, line, S1,
                   O1));
}

/* Structure: lines, sections, keys. */
TEST(errors_of_structure)
{
    char line[CONFIG_LINE_MAX + 2];
    memset(line, 'x', CONFIG_LINE_MAX + 1);
    line[0] = '#';
    line[CONFIG_LINE_MAX + 1] = '\0';
    FAILS(text_of("[node]\n%s\n", line), 2, "line longer than 1024 characters");
    /* The limit counts the raw line, comments and all. */
    FAILS(text_of("[node]\nsite = AMS\ndata = %s\n", line + 1), 3,
          "line longer than 1024");

    FAILS("[node\n", 1, "malformed section header '[node': expected [name]");
    FAILS("# c\n[node] x\n", 2, "malformed section header '[node] x'");
    FAILS("[node] # a comment\n", 1, "malformed section header");
    FAILS("[]\n", 1, "unknown section []");
    FAILS("[nodes]\n", 1,
          "unknown section [nodes] (known: node, site CODE, operator NAME, ");
    FAILS("[Node]\n", 1, "unknown section [Node]");
    FAILS("[node x]\n", 1, "[node] takes no name");
    FAILS("[node]\nsite = AMS\n\n[node]\n", 4, "[node] appears twice");
    FAILS("site = AMS\n", 1, "'site' is outside any section");
    FAILS("# c\n\nfoo\n", 3, "expected 'key = value' or [section], got 'foo'");
    FAILS("[node]\n = AMS\n", 2, "missing key before '='");
    FAILS("[node]\nsite AMS\n", 2,
          "expected 'key = value' or [section], got 'site AMS'");

    /* Unknown keys name the section and the keys it knows. */
    FAILS("[node]\nsite = AMS\nlisen = tcp://127.0.0.1:1\n", 3,
          "unknown key 'lisen' in [node] (known: site, data, listen");
    FAILS("[node]\nSite = AMS\n", 2, "unknown key 'Site' in [node]");
    FAILS("[site AMS]\nname = A\nkey = x\n", 3,
          "unknown key 'key' in [site AMS] (known: name, peer, pubkey)");
    FAILS("[operator alice]\nname = Alice\n", 2,
          "unknown key 'name' in [operator alice] (known: pubkey, role)");

    /* A key set twice would silently override the first. */
    FAILS("[node]\nsite = AMS\ndata = d\nsite = NYC\n", 4,
          "'site' is set twice in this section (first on line 2)");
    FAILS(text_of("[operator alice]\npubkey = %s\nrole = admin\n\n"
                  "pubkey = %s\n",
                  O1, O2),
          5, "'pubkey' is set twice in this section (first on line 2)");
    FAILS(text_of("[site AMS]\npubkey = %s\npubkey = %s\n", S1, S1), 3,
          "'pubkey' is set twice");
    /* The same key in two sections is fine. */
    PARSES(text_of("[node]\nsite = AMS\ndata = d\n[site AMS]\nname = A\n"
                   "pubkey = %s\n[site NYC]\nname = N\npubkey = %s\n"
                   "[operator alice]\npubkey = %s\n",
                   S1, S2, O1));
}

/* Sections that name something: sites and operators. */
TEST(errors_of_names)
{
    FAILS("[site]\n", 1, "[site] needs a site code: [site AMS]");
    FAILS("[site    ]\n", 1, "[site] needs a site code");
    FAILS("[site ABCDEFGHI]\n", 1,
          "site code 'ABCDEFGHI' is longer than 8 characters");
    FAILS("[site A]\n", 1,
          "invalid site code 'A': use 2 to 8 letters or digits, starting "
          "with a letter");
    FAILS("[site 1AB]\n", 1, "invalid site code '1AB'");
    FAILS("[site A-B]\n", 1, "invalid site code 'A-B'");
    FAILS("[site AMS NYC]\n", 1, "invalid site code 'AMS NYC'");
    FAILS("[site \xc3\x84MS]\n", 1, "invalid site code");
    FAILS("[node]\nsite = a\n", 2, "invalid site code 'a'");
    FAILS("[node]\nsite =\n", 2, "invalid site code ''");
    FAILS("[node]\nsite = AMSTERDAM\n", 2,
          "site code 'AMSTERDAM' is longer than 8 characters");
    /* Codes compare upper-cased. */
    FAILS(text_of("[site AMS]\npubkey = %s\n[site ams]\n", S1), 3,
          "[site AMS] appears twice");

    FAILS("[operator]\n", 1, "[operator] needs a name: [operator alice]");
    FAILS("[operator al ice]\n", 1,
          "invalid operator name 'al ice': up to 64 of letters, digits, "
          "'-', '_', '.', '@'");
    FAILS("[operator a/b]\n", 1, "invalid operator name 'a/b'");
    char name[OPERATOR_NAME_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    FAILS(text_of("[operator %s]\n", name), 1, "invalid operator name");
    name[OPERATOR_NAME_MAX] = '\0'; /* exactly the limit is fine */
    PARSES(text_of("[node]\nsite = AMS\ndata = d\n[site AMS]\npubkey = %s\n"
                   "[operator %s]\npubkey = %s\n",
                   S1, name, O1));
    FAILS(text_of("[operator alice]\npubkey = %s\n[operator alice]\n", O1), 3,
          "[operator alice] appears twice");
}

/* Tables are bounded: SITES_MAX sites, OPERATORS_MAX operators. */
TEST(errors_of_counts)
{
    size_t n = 0;
    char *t = textbuf;

    for (int i = 0; i <= SITES_MAX; i++)
        n += (size_t)snprintf(t + n, sizeof textbuf - n, "[site S%d]\n", i);
    CHECK(fails_(textbuf, SITES_MAX + 1, "more than 64 sites", __LINE__));

    n = 0;
    for (int i = 0; i <= OPERATORS_MAX; i++)
        n +=
            (size_t)snprintf(t + n, sizeof textbuf - n, "[operator op%d]\n", i);
    REQUIRE(n < sizeof textbuf - 1);
    CHECK(fails_(textbuf, OPERATORS_MAX + 1, "more than 1024 operators",
                 __LINE__));
}

/* Values. */
TEST(errors_of_values)
{
    FAILS("[node]\ndata =\n", 2, "'data' is empty");
    FAILS("[node]\nkey =   \n", 2, "'key' is empty");
    FAILS("[site AMS]\nname =\n", 2, "'name' is empty");
    char long_name[PERSON_MAX + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    FAILS(text_of("[site AMS]\nname = %s\n", long_name), 2,
          "'name' is longer than 64 characters");

    FAILS("[node]\nlisten = http://x\n", 2,
          "'listen' must be a tcp://HOST:PORT or ipc:///PATH address, not "
          "'http://x'");
    FAILS("[node]\nlisten =\n", 2, "'listen' must be a tcp://");
    FAILS("[node]\nlisten = TCP://127.0.0.1:1\n", 2, "'listen' must be");
    FAILS("[site AMS]\npeer = 10.0.0.1:7500\n", 2,
          "'peer' must be a tcp://HOST:PORT");
    char url[URL_MAX + 16];
    int m = snprintf(url, sizeof url, "tcp://");
    memset(url + m, 'h', sizeof url - (size_t)m - 1);
    url[sizeof url - 1] = '\0';
    FAILS(text_of("[node]\nlisten = %s\n", url), 2,
          "'listen' is longer than 256 characters");

    static const char *const bad_sizes[] = {
        "x",
        "10 GiB",
        "10GB",
        "10gib",
        "-1",
        "",
        "1.5GiB",
        "0x100",
        "GiB",
        "1PiB",
        "99999999999999999999",
        "16777216TiB", /* 2^64: overflows */
    };
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
        FAILS(text_of("[node]\nmap_size = %s\n", bad_sizes[i]), 2,
              "invalid map_size");
    FAILS("[node]\nmap_size = 10GB\n", 2,
          "invalid map_size '10GB': use a number with an optional KiB, MiB, "
          "GiB or TiB suffix");
    FAILS("[node]\nmap_size = 1KiB\n", 2,
          "map_size 1KiB is below the minimum of 1MiB");
    FAILS("[node]\nmap_size = 1048575\n", 2, "below the minimum");
    FAILS("[node]\nmap_size = 0\n", 2, "below the minimum");

    FAILS("[site AMS]\npubkey = ed25519:nope\n", 2,
          "invalid public key 'ed25519:nope': expected ed25519:<43 "
          "base64url characters>, as printed by 'imctl keygen'");
    FAILS("[site AMS]\npubkey =\n", 2, "invalid public key ''");
    FAILS(text_of("[operator alice]\npubkey = %s=\n", O1), 2,
          "invalid public key");
    FAILS(text_of("[operator alice]\npubkey = %.50s\n", O1), 2,
          "invalid public key");
    /* An inline comment is part of the value, so it is refused, not
     * silently dropped. */
    FAILS(text_of("[operator alice]\npubkey = %s # alice's laptop\n", O1), 2,
          "invalid public key");

    FAILS("[operator alice]\nrole = root\n", 2,
          "unknown role 'root' (known: admin, responder, viewer)");
    FAILS("[operator alice]\nrole = Admin\n", 2, "unknown role 'Admin'");
    FAILS("[operator alice]\nrole =\n", 2, "unknown role ''");
}

/* What only shows once the whole file is read. */
TEST(errors_of_the_whole)
{
    FAILS(text_of(SITE_AND_OP, S1, O1), 0, "no [node] section");
    FAILS("", 0, "no [node] section");
    FAILS("# only a comment\n", 0, "no [node] section");
    /* These name the line of the section that lacks something. */
    FAILS(text_of("\n[node]\ndata = d\n" SITE_AND_OP, S1, O1), 2,
          "[node] has no 'site'");
    FAILS(text_of("[node]\nsite = AMS\n" SITE_AND_OP, S1, O1), 1,
          "[node] has no 'data' directory");
    FAILS(text_of("[node]\nsite = NYC\ndata = d\n" SITE_AND_OP, S1, O1), 1,
          "[node] site NYC has no [site NYC] section with its public key");
    FAILS(text_of("[node]\nsite = AMS\ndata = d\n" SITE_AND_OP
                  "\n[site NYC]\nname = New York\n",
                  S1, O1),
          9, "[site NYC] has no 'pubkey'");
    FAILS(text_of("[node]\nsite = AMS\ndata = d\n" SITE_AND_OP
                  "[site NYC]\npubkey = %s\n",
                  S1, O1, S1),
          8, "[site NYC] has the same pubkey as [site AMS]");
    FAILS(
        text_of("[node]\nsite = AMS\ndata = d\n[site AMS]\npubkey = %s\n", S1),
        0, "no [operator NAME] section: nobody could use this node");
    FAILS(text_of("[node]\nsite = AMS\ndata = d\n" SITE_AND_OP
                  "[operator bob]\nrole = viewer\n",
                  S1, O1),
          8, "[operator bob] has no 'pubkey'");
    FAILS(text_of("[node]\nsite = AMS\ndata = d\n" SITE_AND_OP
                  "[operator bob]\npubkey = %s\n",
                  S1, O1, O1),
          8, "[operator bob] has the same pubkey as [operator alice]");

    /* Without 'key', DATA/site.key must fit PATH_MAX_IM. */
    char data[PATH_MAX_IM - 8 + 1];
    memset(data, 'd', sizeof data - 1);
    data[sizeof data - 1] = '\0'; /* 1016 + "/site.key" = 1025 */
    FAILS(text_of("[node]\nsite = AMS\ndata = %s\n" SITE_AND_OP, data, S1, O1),
          1, "[node] has no 'key', and 'data' is too long");
    data[sizeof data - 2] = '\0'; /* 1015 + 9 = 1024 fits */
    PARSES(
        text_of("[node]\nsite = AMS\ndata = %s\n" SITE_AND_OP, data, S1, O1));
    CHECK_EQ_INT(strlen(cfg->node.key), PATH_MAX_IM);
    /* With 'key' set, a long 'data' is fine. */
    data[sizeof data - 2] = 'd';
    PARSES(text_of("[node]\nsite = AMS\nkey = k\ndata = %s\n" SITE_AND_OP, data,
                   S1, O1));
}

/* Writes a file below dir; returns its path in out. */
static int
put_file(char *out, size_t size, const char *rel, const void *bytes,
         size_t bytes_size)
{
    snprintf(out, size, "%s/%s", dir, rel);
    FILE *f = fopen(out, "w");
    if (f == NULL)
        return -1;
    size_t n = fwrite(bytes, 1, bytes_size, f);
    return fclose(f) == 0 && n == bytes_size ? 0 : -1;
}

TEST(load_resolves_relative_paths)
{
    struct im_err e = {0};
    char path[512], want[600];

    REQUIRE(mkdir(text_of("%s/etc", dir), 0700) == 0);
    const char *text = text_of("[node]\nsite = AMS\ndata = data/ams\n"
                               "key = ../keys/ams.key\n" SITE_AND_OP,
                               S1, O1);
    REQUIRE(put_file(path, sizeof path, "etc/ams.conf", text, strlen(text)) ==
            0);
    REQUIRE(config_load(cfg, path, &e) == 0);
    CHECK_EQ_STR(cfg->path, path);
    snprintf(want, sizeof want, "%s/etc/data/ams", dir);
    CHECK_EQ_STR(cfg->node.data, want);
    snprintf(want, sizeof want, "%s/etc/../keys/ams.key", dir);
    CHECK_EQ_STR(cfg->node.key, want);

    /* Absolute paths stay as written; the default key follows data. */
    text =
        text_of("[node]\nsite = AMS\ndata = /srv/im/ams\n" SITE_AND_OP, S1, O1);
    REQUIRE(put_file(path, sizeof path, "etc/abs.conf", text, strlen(text)) ==
            0);
    REQUIRE(config_load(cfg, path, &e) == 0);
    CHECK_EQ_STR(cfg->node.data, "/srv/im/ams");
    CHECK_EQ_STR(cfg->node.key, "/srv/im/ams/site.key");

    /* A file named without a directory: paths stay relative to the
     * working directory, which is the file's. */
    char cwd[512];
    REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    REQUIRE(chdir(text_of("%s/etc", dir)) == 0);
    int rv = config_load(cfg, "ams.conf", &e);
    CHECK(chdir(cwd) == 0);
    REQUIRE(rv == 0);
    CHECK_EQ_STR(cfg->node.data, "data/ams");
    CHECK_EQ_STR(cfg->node.key, "../keys/ams.key");

    /* config_parse has no file: relative to the working directory. */
    PARSES(text_of("[node]\nsite = AMS\ndata = d\nkey = k.key\n" SITE_AND_OP,
                   S1, O1));
    CHECK_EQ_STR(cfg->node.key, "k.key");
}

TEST(load_errors)
{
    struct im_err e = {0};
    char path[1100], want[1300];

    /* A missing file. */
    snprintf(path, sizeof path, "%s/missing.conf", dir);
    CHECK_EQ_INT(config_load(cfg, path, &e), IM_ECONFIG);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    CHECK_EQ_STR(e.msg, want);

    /* Errors in a loaded file name it as given. */
    const char *text = "[node]\nsite = AMS\nlisen = x\n";
    REQUIRE(put_file(path, sizeof path, "typo.conf", text, strlen(text)) == 0);
    CHECK_EQ_INT(config_load(cfg, path, &e), IM_ECONFIG);
    snprintf(want, sizeof want, "%s:3: unknown key 'lisen' in [node]", path);
    CHECK(strncmp(e.msg, want, strlen(want)) == 0);

    /* A NUL byte: not a text file. */
    static const char nul[] = "[node]\nsite = AMS\0\ndata = d\n";
    REQUIRE(put_file(path, sizeof path, "nul.conf", nul, sizeof nul - 1) == 0);
    CHECK_EQ_INT(config_load(cfg, path, &e), IM_ECONFIG);
    snprintf(want, sizeof want, "%s: contains a NUL byte: not a text file",
             path);
    CHECK_EQ_STR(e.msg, want);

    /* Larger than 1 MiB (a mistaken path to a log or a database). */
    size_t big_size = 1024 * 1024 + 1;
    char *big = malloc(big_size);
    REQUIRE(big != NULL);
    memset(big, '#', big_size);
    for (size_t i = 100; i < big_size; i += 100)
        big[i] = '\n';
    int rv = put_file(path, sizeof path, "big.conf", big, big_size);
    free(big);
    REQUIRE(rv == 0);
    CHECK_EQ_INT(config_load(cfg, path, &e), IM_ECONFIG);
    snprintf(want, sizeof want, "%s: larger than 1048576 bytes", path);
    CHECK_EQ_STR(e.msg, want);

    /* A directory. */
    snprintf(path, sizeof path, "%s", dir);
    CHECK_EQ_INT(config_load(cfg, path, &e), IM_ECONFIG);
    snprintf(want, sizeof want, "%s: Is a directory", path);
    CHECK_EQ_STR(e.msg, want);

    /* A relative 'data' that, joined to the file's deep directory, exceeds
     * PATH_MAX_IM (the file's own path stays short enough for the whole
     * message to fit IM_ERRMSG_MAX). */
    char deep[1024], seg[201];
    memset(seg, 's', 200);
    seg[200] = '\0';
    snprintf(deep, sizeof deep, "%s", dir);
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(deep);
        snprintf(deep + n, sizeof deep - n, "/%s", seg + 100 * i);
        REQUIRE(mkdir(deep, 0700) == 0 || errno == EEXIST);
    }
    char data[751];
    memset(data, 'd', 750);
    data[750] = '\0';
    text = text_of("[node]\nsite = AMS\ndata = %s\n" SITE_AND_OP, data, S1, O1);
    snprintf(path, sizeof path, "%s/n.conf", deep);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs(text, f);
    REQUIRE(fclose(f) == 0);
    CHECK_EQ_INT(config_load(cfg, path, &e), IM_ECONFIG);
    snprintf(want, sizeof want, "%s:3: 'data' is longer than 1024 characters",
             path);
    if (strcmp(e.msg, want) != 0)
        fprintf(stderr, "got: %s\n", e.msg);
    CHECK_EQ_STR(e.msg, want);
}

TEST(readme_style_inline_comments_are_refused_clearly)
{
    /* An annotation after a value is not a comment: the file is refused
     * with the value quoted, so the reader sees why. */
    FAILS("[node]\nsite = AMS   # this node's site code\n", 2,
          "site code 'AMS   # this node's site code' is longer than 8");
    FAILS("[site AMS]   # every site\n", 1, "malformed section header");
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
setup(void)
{
    struct im_key k;
    const char *tmp = getenv("TMPDIR");

    if (keys_init() != 0)
        return -1;
    cfg = malloc(sizeof *cfg);
    if (cfg == NULL)
        return -1;
    key_generate(&k);
    key_pub_encode(k.pk, S1);
    memcpy(S1_pk, k.pk, KEY_PUB_BYTES);
    key_generate(&k);
    key_pub_encode(k.pk, S2);
    key_generate(&k);
    key_pub_encode(k.pk, O1);
    key_generate(&k);
    key_pub_encode(k.pk, O2);
    memcpy(O2_pk, k.pk, KEY_PUB_BYTES);
    snprintf(dir, sizeof dir, "%s/test_config.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static void
teardown(void)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(cfg);
}

/* A coordinator replica's file: [coord], [coordinator], [etcd]. */
#define COORD_FILE                                                             \
    "[coord]\n"                       /* 1 */                                  \
    "id = c1\n"                       /* 2 */                                  \
    "key = keys/c1.key\n"             /* 3 */                                  \
    "cluster = prod\n"                /* 4 */                                  \
    "[coordinator c1]\n"              /* 5 */                                  \
    "api = tcp://127.0.0.1:7600\n"    /* 6 */                                  \
    "pubkey = %s\n"                   /* 7 */                                  \
    "[etcd]\n"                        /* 8 */                                  \
    "endpoints = http://127.0.0.1:2379, http://127.0.0.1:2380\n" /* 9 */        \
    SITE_AND_OP                       /* 10..13 */

TEST(coordinator_sections)
{
    char c1[KEY_PUB_TEXT_MAX];
    struct im_key k;
    const struct cfg_coordinator *co;

    key_generate(&k);
    key_pub_encode(k.pk, c1);
    REQUIRE(parses_(text_of(COORD_FILE, c1, S1, O1), __LINE__));
    CHECK_EQ_STR(cfg->coord.id, "c1");
    CHECK_EQ_STR(cfg->coord.key, "keys/c1.key");
    CHECK_EQ_STR(cfg->coord.listen, "tcp://127.0.0.1:7600"); /* its api */
    CHECK_EQ_INT(cfg->coord.lease_ms, COORD_LEASE_MS_DEFAULT);
    CHECK_EQ_INT(cfg->coord.leader_ttl_s, COORD_LEADER_TTL_S_DEFAULT);
    CHECK_EQ_INT(cfg->coord.min_ack_ms, COORD_MIN_ACK_MS_DEFAULT);
    CHECK_EQ_STR(cfg->etcd.prefix, "/incident-mesh/prod");
    CHECK_EQ_INT(cfg->etcd.timeout_ms, CONFIG_ETCD_TIMEOUT_MS_DEFAULT);
    co = config_coordinator_by_key(cfg, k.pk);
    REQUIRE(co != NULL);
    CHECK_EQ_STR(co->id, "c1");
    CHECK(config_site_by_key(cfg, S1_pk) != NULL);
    CHECK(config_site_by_key(cfg, k.pk) == NULL);

    PARSES(text_of("[coord]\nid = c1\nkey = k\nlease = 1500ms\n"
                   "leader_ttl = 5s\nlisten = tcp://0.0.0.0:7600\nmin_ack = 5s\n"
                   "[coordinator c1]\napi = tcp://h:1\npubkey = %s\n"
                   "[etcd]\nendpoints = https://e:2379\nca = ca.pem\n"
                   "cert = c.pem\nkey = c.key\nprefix = /im/x\n"
                   "timeout = 500ms\n" SITE_AND_OP,
                   c1, S1, O1));
    CHECK_EQ_INT(cfg->coord.lease_ms, 1500);
    CHECK_EQ_INT(cfg->coord.leader_ttl_s, 5);
    CHECK_EQ_INT(cfg->coord.min_ack_ms, 5000);
    CHECK_EQ_STR(cfg->coord.listen, "tcp://0.0.0.0:7600");
    CHECK_EQ_STR(cfg->etcd.prefix, "/im/x");
    CHECK_EQ_INT(cfg->etcd.timeout_ms, 500);

    /* A node may list the coordinators it heartbeats. */
    PARSES(text_of("[node]\nsite = AMS\ndata = d\n[coordinator c1]\n"
                   "api = tcp://h:1\npubkey = %s\n" SITE_AND_OP,
                   c1, S1, O1));
    CHECK_EQ_INT(cfg->coordinators_count, 1);
    CHECK_EQ_INT(cfg->coord.line, 0);

    /* Errors, each on its line. */
    FAILS(text_of("[node]\nsite = AMS\ndata = d\n" COORD_FILE, c1, S1, O1), 0,
          "both [node] and [coord]");
    FAILS(text_of("[coord]\nid = c1\nkey = k\n" SITE_AND_OP, S1, O1), 1,
          "[coord] id c1 has no [coordinator c1] section");
    FAILS(text_of("[coord]\nkey = k\n" SITE_AND_OP, S1, O1), 1,
          "[coord] has no 'id'");
    FAILS(text_of("[coord]\nid = c1\n[coordinator c1]\napi = tcp://h:1\n"
                  "pubkey = %s\n" SITE_AND_OP, c1, S1, O1), 1,
          "[coord] has no 'key'");
    FAILS(text_of("[coord]\nid = c1\nkey = k\n[coordinator c1]\n"
                  "api = tcp://h:1\npubkey = %s\n" SITE_AND_OP, c1, S1, O1),
          1, "no [etcd] section");
    FAILS(text_of("[coord]\nid = c1\nkey = k\n[coordinator c1]\n"
                  "api = tcp://h:1\npubkey = %s\n[etcd]\ncert = c\n"
                  "endpoints = http://e:1\n" SITE_AND_OP, c1, S1, O1),
          7, "'cert' without its 'key'");
    FAILS(text_of("[coord]\nid = c1\nkey = k\n[coordinator c1]\n"
                  "api = tcp://h:1\npubkey = %s\n[etcd]\n"
                  "endpoints = http://e:1\n[operator alice]\npubkey = %s\n",
                  c1, O1),
          0, "no [site CODE] section");
    FAILS("[coord]\nlease = 3 s\n", 2, "invalid lease '3 s'");
    FAILS("[coord]\nlease = 100ms\n", 2, "lease 100ms is outside 500ms..60000ms");
    FAILS("[coord]\nleader_ttl = 1500ms\n", 2, "not whole seconds");
    FAILS("[coord]\nmin_ack = 4s\n", 2, "min_ack 4s is outside 5000ms..3600000ms");
    FAILS("[coord]\nmin_ack = soon\n", 2, "invalid min_ack 'soon'");
    FAILS("[coord]\nid = c 1\n", 2, "invalid coordinator id 'c 1'");
    FAILS("[coord]\nbogus = 1\n", 2, "unknown key 'bogus' in [coord]");
    FAILS("[coord x]\n", 1, "[coord] takes no name");
    FAILS("[coordinator]\n", 1, "[coordinator] needs an id");
    FAILS("[coordinator c1]\napi = http://h:1\n", 2,
          "'api' must be a tcp://HOST:PORT");
    FAILS("[coordinator c1]\n[coordinator c1]\n", 2,
          "[coordinator c1] appears twice");
    FAILS(text_of("[coordinator c1]\npubkey = %s\n", c1), 1,
          "[coordinator c1] has no 'api' address");
    FAILS(text_of("[coordinator c1]\napi = tcp://h:1\npubkey = %s\n"
                  "[coordinator c2]\napi = tcp://h:1\npubkey = %s\n",
                  c1, O2),
          4, "same api address as [coordinator c1]");
    FAILS(text_of("[coordinator c1]\napi = tcp://h:1\npubkey = %s\n"
                  SITE_AND_OP, S1, S1, O1),
          1, "same pubkey as [site AMS]");
    FAILS("[etcd]\nendpoints = ftp://e:1\n", 2,
          "etcd endpoint 'ftp://e:1': use http://HOST:PORT");
    FAILS("[etcd]\nendpoints = http://e:1/v3\n", 2, "no path or query");
    FAILS("[etcd]\nprefix = im\n", 2, "invalid prefix 'im'");
    FAILS("[etcd]\nprefix = /im/\n", 2, "invalid prefix '/im/'");
    FAILS("[etcd]\nprefix = /i m\n", 2, "invalid prefix '/i m'");
    FAILS("[etcd]\n[etcd]\n", 2, "[etcd] appears twice");
    FAILS("[etcd]\nuser = x\n", 2, "unknown key 'user' in [etcd]");
}

TEST_MAIN(if (setup() != 0) return 1; RUN(valid_file); RUN(defaults);
          RUN(coordinator_sections);
          RUN(errors_of_structure); RUN(errors_of_names); RUN(errors_of_counts);
          RUN(errors_of_values); RUN(errors_of_the_whole);
          RUN(load_resolves_relative_paths); RUN(load_errors);
          RUN(readme_style_inline_comments_are_refused_clearly); teardown())
