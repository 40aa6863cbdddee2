/* etcd_proc: a real single-member etcd for tests, on free loopback ports in
 * a temporary directory, started and killed by the test itself.
 *
 *   struct etcd_proc ep;
 *   if (etcd_proc_start(&ep, NULL) != 0) ...skip or fail...
 *   ... ep.client_url ...
 *   etcd_proc_stop(&ep);
 *
 * The binary is ETCD_BIN or /usr/bin/etcd (Debian's etcd-server, which
 * deploy/deps installs). Its log is DIR/etcd.log, printed on a failed start. */
#ifndef IM_ETCD_PROC_H
#define IM_ETCD_PROC_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct etcd_proc {
    pid_t pid;
    char dir[256];
    char client_url[64];
    char extra[512];      /* extra etcd arguments (TLS flags) */
    char curl_extra[512]; /* extra curl arguments for the health check */
};

static const char *
etcd_proc_bin(void)
{
    const char *b = getenv("ETCD_BIN");
    return b && *b ? b : "/usr/bin/etcd";
}

/* 1 if the etcd binary is there. */
static int
etcd_proc_available(void)
{
    return access(etcd_proc_bin(), X_OK) == 0;
}

/* A port that was free a moment ago (the kernel's pick). */
static int
etcd_proc_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int
etcd_proc_healthy(const struct etcd_proc *p, const char *url)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -s -f -m 1 -o /dev/null %s -X POST -d '{}' "
             "%s/v3/maintenance/status >/dev/null 2>&1",
             p->curl_extra, url);
    return system(cmd) == 0;
}

/* Starts etcd (p zeroed, or with extra/curl_extra/dir set); scheme "http"
 * or "https". 0 when it answers. */
static int
etcd_proc_start_scheme(struct etcd_proc *p, const char *scheme)
{
    char tmpl[] = "/tmp/im-etcd-XXXXXX";
    if (scheme == NULL)
        scheme = "http";
    if (p->dir[0] == '\0') {
        if (mkdtemp(tmpl) == NULL)
            return -1;
        snprintf(p->dir, sizeof p->dir, "%s", tmpl);
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int cport = etcd_proc_free_port(), pport = etcd_proc_free_port();
        char curl_[64], purl[64], data[300], log[300], cluster[128], cmd[2048];
        if (cport == 0 || pport == 0 || cport == pport)
            continue;
        snprintf(curl_, sizeof curl_, "%s://127.0.0.1:%d", scheme, cport);
        snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pport);
        snprintf(data, sizeof data, "%s/data", p->dir);
        snprintf(log, sizeof log, "%s/etcd.log", p->dir);
        snprintf(cluster, sizeof cluster, "t=%s", purl);
        snprintf(cmd, sizeof cmd,
                 "exec %s --name t --data-dir %s --listen-client-urls %s "
                 "--advertise-client-urls %s --listen-peer-urls %s "
                 "--initial-advertise-peer-urls %s --initial-cluster %s "
                 "--initial-cluster-state new --logger zap --log-outputs %s %s",
                 etcd_proc_bin(), data, curl_, curl_, purl, purl, cluster, log,
                 p->extra);
        p->pid = fork();
        if (p->pid < 0)
            return -1;
        if (p->pid == 0) {
            setpgid(0, 0);
            freopen("/dev/null", "w", stdout);
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        snprintf(p->client_url, sizeof p->client_url, "%s", curl_);
        for (int i = 0; i < 100; i++) { /* 10 s */
            int st;
            struct timespec ts = {0, 100 * 1000 * 1000};
            if (waitpid(p->pid, &st, WNOHANG) == p->pid)
                break;
            if (etcd_proc_healthy(p, curl_))
                return 0;
            nanosleep(&ts, NULL);
        }
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
    {
        char cmd[400];
        fprintf(stderr, "etcd did not start; its log:\n");
        snprintf(cmd, sizeof cmd, "tail -n 20 %s/etcd.log >&2", p->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    }
    return -1;
}

static int
etcd_proc_start(struct etcd_proc *p)
{
    return etcd_proc_start_scheme(p, "http");
}

/* Stops etcd (SIGKILL: tests do not need a clean shutdown) and removes its
 * directory. */
static void
etcd_proc_stop(struct etcd_proc *p)
{
    char cmd[300];
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
    if (p->dir[0] != '\0' && strncmp(p->dir, "/tmp/im-etcd-", 13) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", p->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", p->dir);
    }
    p->dir[0] = '\0';
}

#endif
