/* Integration test harness: see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#ifndef M2M_SIM_PATH
#error "M2M_SIM_PATH must name the simulator binary"
#endif
#ifndef M2M_BRIDGE_PATH
#error "M2M_BRIDGE_PATH must name the bridge binary"
#endif
#ifndef M2M_MOSQUITTO_PATH
#define M2M_MOSQUITTO_PATH "/usr/sbin/mosquitto"
#endif

extern char **environ;

/* ------------------------------------------------------------------ */
/* Common                                                               */

static struct h_bridge *g_watch;   /* a bridge whose death fails any wait */

static void once_init(void)
{
    /* Writing to a simulator that died must fail the test, not kill it. */
    signal(SIGPIPE, SIG_IGN);
}

static void init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, once_init);
}

void h_init_filter(void)
{
    const char *f = getenv("M2M_IT_FILTER");
    if (f && *f)
        cmocka_set_test_filter(f);
}

int h_ms(int timeout_ms)
{
    const char *s = getenv("M2M_IT_TIMEOUT_SCALE");
    long scale = s ? strtol(s, NULL, 10) : 1;
    if (scale < 1)
        scale = 1;
    return (int)(timeout_ms * scale);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Absolute CLOCK_MONOTONIC time for pthread_cond_timedwait: the earlier of
 * the deadline and now + step_ms (so waits can look at the bridge). */
static struct timespec abs_until(int64_t deadline, int step_ms)
{
    int64_t t = now_ms() + step_ms;
    if (t > deadline)
        t = deadline;
    struct timespec ts = { (time_t)(t / 1000), (long)(t % 1000) * 1000000L };
    return ts;
}

static void init_mu_cv(pthread_mutex_t *mu, pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_mutex_init(mu, NULL);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

void h_fail_at(const char *file, int line, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    print_error("ERROR: %s\n", buf);
    _fail(file, line);
    abort(); /* _fail longjmps out of the test */
}

char *h_strdupf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        h_fail("out of memory");
    return s;
}

static void make_dir(const char *file, int line, char *dir, size_t size, const char *kind)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(dir, size, "%s/m2m-%s-XXXXXX", tmp, kind);
    if (!mkdtemp(dir))
        h_fail_at(file, line, "mkdtemp(%s): %s", dir, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool keep_dirs(void)
{
    const char *k = getenv("M2M_IT_KEEP");
    return k && *k && strcmp(k, "0") != 0;
}

/* Reaps pid within timeout_ms; true when it exited (status in *status). */
static bool reap(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR)
            return true; /* not our child any more */
        if (now_ms() >= deadline)
            return false;
        sleep_ms(5);
    }
}

static void describe_status(int status, char *out, size_t size)
{
    if (WIFEXITED(status))
        snprintf(out, size, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, size, "wait status 0x%x", status);
}

/* Stops pid: sig, wait, SIGKILL fallback. true when it exited after sig. */
static bool stop_child(pid_t pid, int sig, int timeout_ms, int *status)
{
    if (pid <= 0)
        return true;
    kill(pid, sig);
    if (reap(pid, timeout_ms, status))
        return true;
    kill(pid, SIGKILL);
    reap(pid, 5000, status);
    return false;
}

/* fork + execve; fds: stdin, stdout, stderr for the child (-1: /dev/null).
 * Everything else is closed in the child; it dies with the test. */
/* uid: 0 runs the program as the test's user; else as that user and the
 * group of the same number, without supplementary groups (the test runs
 * as root). */
static pid_t spawn_as(const char *file, int line, char *const argv[], char *const envp[], int in,
                      int out, int err, uid_t uid)
{
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0)
        h_fail_at(file, line, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls from here on. */
        if (uid && (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0))
            _exit(126);
        /* After setuid, which clears it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in >= 0 ? in : null_fd, 0);
        dup2(out >= 0 ? out : null_fd, 1);
        dup2(err >= 0 ? err : null_fd, 2);
        close_range(3, ~0U, 0);
        execve(argv[0], argv, envp ? envp : environ);
        static const char msg[] = "harness: execve failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    close(null_fd);
    return pid;
}

static pid_t spawn(const char *file, int line, char *const argv[], char *const envp[], int in,
                   int out, int err)
{
    return spawn_as(file, line, argv, envp, in, out, err, 0);
}

/* Prints the last n lines of a file to stderr. */
static void dump_file_tail(const char *title, const char *path, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "---- %s: %s: %s\n", title, path, strerror(errno));
        return;
    }
    char **ring = calloc(n, sizeof *ring);
    size_t total = 0;
    char *line = NULL;
    size_t cap = 0;
    while (ring && getline(&line, &cap, f) >= 0) {
        free(ring[total % n]);
        ring[total % n] = strdup(line);
        total++;
    }
    fprintf(stderr, "---- %s (%s), last %zu of %zu lines:\n", title, path, total < n ? total : n,
            total);
    for (size_t i = total > n ? total - n : 0; ring && i < total; i++) {
        const char *l = ring[i % n] ? ring[i % n] : "";
        fprintf(stderr, "  %s%s", l, (*l && l[strlen(l) - 1] == '\n') ? "" : "\n");
    }
    fprintf(stderr, "---- end of %s\n", title);
    for (size_t i = 0; ring && i < n; i++)
        free(ring[i]);
    free(ring);
    free(line);
    fclose(f);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -errno;
}

/* A bridge that died fails whatever the test was waiting for, at once. */
static void check_watch(const char *file, int line, const char *what)
{
    if (g_watch && !h_bridge_running(g_watch)) {
        char st[96];
        struct h_bridge *br = g_watch;
        g_watch = NULL;
        describe_status(br->status, st, sizeof st);
        h_fail_at(file, line, "the bridge exited (%s) while waiting for %s; log: %s", st, what,
                  br->log_path);
    }
}

/* ------------------------------------------------------------------ */
/* Broker                                                               */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool tcp_connects(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Starts mosquitto on b->port with b->dir; false if it exited at once
 * (port taken). Fails the test on other errors. */
static bool broker_spawn(const char *file, int line, struct h_broker *b)
{
    char conf[320], errlog[320];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", b->dir);
    snprintf(errlog, sizeof errlog, "%s/mosquitto.stderr", b->dir);
    int err = open(errlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    char *argv[] = { (char *)M2M_MOSQUITTO_PATH, (char *)"-c", conf, NULL };
    b->pid = spawn(file, line, argv, NULL, -1, err, err);
    if (err >= 0)
        close(err);

    int64_t deadline = now_ms() + h_ms(10000);
    for (;;) {
        int status;
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            return false;
        }
        if (tcp_connects(b->port))
            return true;
        if (now_ms() >= deadline) {
            char log[320];
            snprintf(log, sizeof log, "%s/mosquitto.log", b->dir);
            dump_file_tail("mosquitto log", log, 20);
            stop_child(b->pid, SIGKILL, 2000, &status);
            b->pid = 0;
            h_fail_at(file, line, "mosquitto did not accept connections on 127.0.0.1:%d within %d ms",
                      b->port, h_ms(10000));
        }
        sleep_ms(10);
    }
}

static void broker_write_conf(const char *file, int line, struct h_broker *b)
{
    char conf[320];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", b->dir);
    /* persistence: the restart test needs the subscriber's persistent
     * session, its subscription and its queued QoS 1 messages (and the
     * retained messages) to survive a broker restart. mosquitto writes the
     * database when it exits on SIGTERM; autosave_interval 1 covers the
     * SIGKILL fallback. */
    char *text = h_strdupf("listener %d 127.0.0.1\n"
                           "%s"
                           "persistence true\n"
                           "persistence_location %s/\n"
                           "persistence_file mosquitto.db\n"
                           "autosave_interval 1\n"
                           "max_queued_messages 10000\n"
                           "log_dest file %s/mosquitto.log\n"
                           "log_type all\n"
                           "connection_messages true\n"
                           "%s%s%s%s",
                           b->port, b->auth ? "allow_anonymous false\n" : "allow_anonymous true\n",
                           b->dir, b->dir, geteuid() == 0 ? "user root\n" : "",
                           b->auth ? "password_file " : "", b->auth ? b->dir : "",
                           b->auth ? "/passwd\n" : "");
    int rc = write_file(conf, text);
    free(text);
    if (rc)
        h_fail_at(file, line, "writing %s: %s", conf, strerror(-rc));
}

/* The one user of an auth broker: mosquitto_passwd writes its file. */
static void broker_add_user(const char *file, int line, struct h_broker *b, const char *user,
                            const char *password)
{
    char path[320];
    int status;

    snprintf(path, sizeof path, "%s/passwd", b->dir);
    char *argv[] = { (char *)M2M_MOSQUITTO_PASSWD_PATH, (char *)"-c", (char *)"-b", path,
                     (char *)user, (char *)password, NULL };
    pid_t pid = spawn(file, line, argv, NULL, -1, -1, -1);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        h_fail_at(file, line, "%s failed", M2M_MOSQUITTO_PASSWD_PATH);
}

void h_broker_start_at(const char *file, int line, struct h_broker *b)
{
    h_broker_start_auth_at(file, line, b, NULL, NULL);
}

void h_broker_start_auth_at(const char *file, int line, struct h_broker *b, const char *user,
                            const char *password)
{
    init();
    memset(b, 0, sizeof *b);
    make_dir(file, line, b->dir, sizeof b->dir, "broker");
    if (user) {
        broker_add_user(file, line, b, user, password);
        b->auth = true;
    }
    /* The port is free when chosen and may be taken before mosquitto binds
     * it: try a few. */
    for (int attempt = 0; attempt < 5; attempt++) {
        b->port = free_port();
        if (b->port <= 0)
            h_fail_at(file, line, "no free loopback port: %s", strerror(errno));
        snprintf(b->uri, sizeof b->uri, "mqtt://127.0.0.1:%d", b->port);
        broker_write_conf(file, line, b);
        if (broker_spawn(file, line, b))
            return;
    }
    char log[320];
    snprintf(log, sizeof log, "%s/mosquitto.stderr", b->dir);
    dump_file_tail("mosquitto stderr", log, 20);
    h_fail_at(file, line, "mosquitto exited at start five times (see %s)", b->dir);
}

/* SIGTERM, again every 500 ms: mosquitto 2.0 loses a SIGTERM that comes
 * after its listeners accept connections but before its main loop runs
 * (it sets its run flag there), and a loaded machine makes that window
 * long. A repeated SIGTERM is harmless. Then SIGKILL. */
static bool stop_broker(pid_t pid, int timeout_ms, int *status)
{
    for (int waited = 0; waited < timeout_ms; waited += 500) {
        kill(pid, SIGTERM);
        if (reap(pid, 500, status))
            return true;
    }
    kill(pid, SIGKILL);
    reap(pid, 5000, status);
    return false;
}

void h_broker_stop_at(const char *file, int line, struct h_broker *b)
{
    int status = 0;
    if (b->pid <= 0)
        h_fail_at(file, line, "h_broker_stop: the broker is not running");
    bool clean = stop_broker(b->pid, h_ms(10000), &status);
    b->pid = 0;
    if (!clean)
        h_fail_at(file, line, "mosquitto did not exit within %d ms of SIGTERM", h_ms(10000));
}

void h_broker_restart_at(const char *file, int line, struct h_broker *b)
{
    if (b->pid > 0)
        h_broker_stop_at(file, line, b);
    if (!broker_spawn(file, line, b)) {
        char log[320];
        snprintf(log, sizeof log, "%s/mosquitto.log", b->dir);
        dump_file_tail("mosquitto log", log, 20);
        h_fail_at(file, line, "mosquitto did not restart on port %d", b->port);
    }
}

void h_broker_cleanup(struct h_broker *b, bool keep)
{
    int status;
    if (b->pid > 0)
        stop_child(b->pid, SIGTERM, 5000, &status);
    b->pid = 0;
    if (!keep)
        rm_rf(b->dir);
    b->dir[0] = 0;
}

/* ------------------------------------------------------------------ */
/* Simulator                                                            */

static void sim_add_line(struct h_sim *s, char *line, FILE *log)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\r'))
        line[--len] = 0;
    if (log) {
        fprintf(log, "%s\n", line);
        fflush(log);
    }
    pthread_mutex_lock(&s->mu);
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        char **l = realloc(s->lines, cap * sizeof *l);
        bool *c = realloc(s->consumed, cap * sizeof *c);
        if (!l || !c)
            abort();
        s->lines = l;
        s->consumed = c;
        s->cap = cap;
    }
    s->lines[s->n] = strdup(line);
    s->consumed[s->n] = false;
    s->n++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *sim_reader(void *arg)
{
    struct h_sim *s = arg;
    char path[320];
    snprintf(path, sizeof path, "%s/sim.out", s->dir);
    FILE *log = fopen(path, "w");
    char *acc = NULL;
    size_t acc_len = 0, acc_cap = 0;
    char buf[4096];
    for (;;) {
        ssize_t r = read(s->out_fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++) {
            if (acc_len + 1 >= acc_cap) {
                acc_cap = acc_cap ? 2 * acc_cap : 1024;
                acc = realloc(acc, acc_cap);
                if (!acc)
                    abort();
            }
            if (buf[i] == '\n') {
                acc[acc_len] = 0;
                sim_add_line(s, acc, log);
                acc_len = 0;
            } else {
                acc[acc_len++] = buf[i];
            }
        }
    }
    if (acc_len) {
        acc[acc_len] = 0;
        sim_add_line(s, acc, log);
    }
    free(acc);
    if (log)
        fclose(log);
    pthread_mutex_lock(&s->mu);
    s->eof = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_reply(const char *l)
{
    return strcmp(l, "ok") == 0 || starts_with(l, "ok ") || strcmp(l, "error") == 0 ||
           starts_with(l, "error ");
}

/* Finds (and takes) the first untaken line >= from matching; -1 when none
 * within the deadline. Called with s->mu held. */
static long sim_find(struct h_sim *s, size_t from, const char *const *prefixes, bool reply)
{
    for (size_t i = from; i < s->n; i++) {
        if (s->consumed[i])
            continue;
        bool m = false;
        if (reply)
            m = is_reply(s->lines[i]);
        for (size_t p = 0; !reply && prefixes[p]; p++)
            m = m || starts_with(s->lines[i], prefixes[p]);
        if (m) {
            s->consumed[i] = true;
            return (long)i;
        }
    }
    return -1;
}

static long sim_wait(const char *file, int line, struct h_sim *s, size_t from,
                     const char *const *prefixes, bool reply, int timeout_ms, const char *what)
{
    int64_t deadline = now_ms() + h_ms(timeout_ms);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        long i = sim_find(s, from, prefixes, reply);
        if (i >= 0) {
            pthread_mutex_unlock(&s->mu);
            return i;
        }
        if (s->eof) {
            pthread_mutex_unlock(&s->mu);
            h_fail_at(file, line, "the simulator exited while waiting for %s", what);
        }
        if (now_ms() >= deadline) {
            pthread_mutex_unlock(&s->mu);
            h_fail_at(file, line, "timeout (%d ms): no simulator line %s", h_ms(timeout_ms), what);
        }
        pthread_mutex_unlock(&s->mu);
        check_watch(file, line, what);
        pthread_mutex_lock(&s->mu);
        struct timespec ts = abs_until(deadline, 100);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
}

static void copy_line(struct h_sim *s, long i, char *out, size_t size)
{
    if (!out || !size)
        return;
    pthread_mutex_lock(&s->mu);
    snprintf(out, size, "%s", s->lines[i]);
    pthread_mutex_unlock(&s->mu);
}

void h_sim_start_at(const char *file, int line, struct h_sim *s, const char *const *extra_args)
{
    init();
    memset(s, 0, sizeof *s);
    s->in_fd = s->out_fd = -1;
    init_mu_cv(&s->mu, &s->cv);
    make_dir(file, line, s->dir, sizeof s->dir, "sim");
    snprintf(s->link, sizeof s->link, "%s/modem", s->dir);

    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
        h_fail_at(file, line, "pipe: %s", strerror(errno));
    char errpath[320];
    snprintf(errpath, sizeof errpath, "%s/sim.stderr", s->dir);
    int err = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    const char *argv[64];
    size_t n = 0;
    argv[n++] = M2M_SIM_PATH;
    argv[n++] = "--link";
    argv[n++] = s->link;
    for (size_t i = 0; extra_args && extra_args[i] && n < 62; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    s->pid = spawn(file, line, (char *const *)argv, NULL, in[0], out[1], err);
    close(in[0]);
    close(out[1]);
    if (err >= 0)
        close(err);
    s->in_fd = in[1];
    s->out_fd = out[0];
    if (pthread_create(&s->reader, NULL, sim_reader, s) != 0)
        h_fail_at(file, line, "pthread_create failed");
    s->reader_started = true;

    static const char *const pty[] = { "pty ", NULL };
    long i = sim_wait(file, line, s, 0, pty, false, 10000, "starting with 'pty ' (simulator start)");
    pthread_mutex_lock(&s->mu);
    snprintf(s->pty, sizeof s->pty, "%s", s->lines[i] + 4);
    pthread_mutex_unlock(&s->mu);

    /* The link should exist by now; allow the simulator a moment. */
    int64_t deadline = now_ms() + h_ms(5000);
    struct stat st;
    while (lstat(s->link, &st) != 0) {
        if (now_ms() >= deadline)
            h_fail_at(file, line, "the simulator printed 'pty %s' but no link %s appeared", s->pty,
                      s->link);
        sleep_ms(5);
    }
}

int h_sim_cmd_at(const char *file, int line, struct h_sim *s, const char *cmd, char *reply,
                 size_t size)
{
    pthread_mutex_lock(&s->mu);
    size_t from = s->n;
    pthread_mutex_unlock(&s->mu);

    size_t len = strlen(cmd);
    char *buf = malloc(len + 2);
    if (!buf)
        h_fail_at(file, line, "out of memory");
    memcpy(buf, cmd, len);
    buf[len] = '\n';
    size_t off = 0;
    while (off < len + 1) {
        ssize_t w = write(s->in_fd, buf + off, len + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            free(buf);
            h_fail_at(file, line, "writing '%s' to the simulator: %s", cmd, strerror(errno));
        }
        off += (size_t)w;
    }
    free(buf);

    char what[512];
    snprintf(what, sizeof what, "'ok'/'error' answering '%.400s'", cmd);
    long i = sim_wait(file, line, s, from, NULL, true, 10000, what);
    pthread_mutex_lock(&s->mu);
    const char *l = s->lines[i];
    int rc = starts_with(l, "ok") ? 0 : -1;
    const char *rest = l + (rc == 0 ? 2 : 5);
    if (*rest == ' ')
        rest++;
    if (reply && size)
        snprintf(reply, size, "%s", rest);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void h_sim_cmd_ok_at(const char *file, int line, struct h_sim *s, const char *cmd, char *reply,
                     size_t size)
{
    char buf[1024];
    if (h_sim_cmd_at(file, line, s, cmd, buf, sizeof buf) != 0)
        h_fail_at(file, line, "simulator command '%.200s' answered 'error %s'", cmd, buf);
    if (reply && size)
        snprintf(reply, size, "%s", buf);
}

long h_sim_count_at(const char *file, int line, struct h_sim *s)
{
    char buf[64];
    h_sim_cmd_ok_at(file, line, s, "count", buf, sizeof buf);
    char *end;
    long n = strtol(buf, &end, 10);
    if (end == buf || *end)
        h_fail_at(file, line, "simulator 'count' answered 'ok %s'", buf);
    return n;
}

size_t h_sim_wait_line_at(const char *file, int line, struct h_sim *s, const char *prefix,
                          char *out, size_t size, int timeout_ms)
{
    const char *const p[] = { prefix, NULL };
    char what[256];
    snprintf(what, sizeof what, "starting with '%s'", prefix);
    long i = sim_wait(file, line, s, 0, p, false, timeout_ms, what);
    copy_line(s, i, out, size);
    return (size_t)i;
}

size_t h_sim_wait_any_at(const char *file, int line, struct h_sim *s, size_t from,
                         const char *const *prefixes, char *out, size_t size, int timeout_ms)
{
    char what[512] = "starting with one of:";
    for (size_t i = 0; prefixes[i]; i++) {
        size_t l = strlen(what);
        snprintf(what + l, sizeof what - l, " '%s'", prefixes[i]);
    }
    long i = sim_wait(file, line, s, from, prefixes, false, timeout_ms, what);
    copy_line(s, i, out, size);
    return (size_t)i;
}

size_t h_sim_mark(struct h_sim *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t h_sim_saw_since(struct h_sim *s, size_t from, const char *prefix)
{
    size_t c = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = from; i < s->n; i++)
        c += starts_with(s->lines[i], prefix);
    pthread_mutex_unlock(&s->mu);
    return c;
}

size_t h_sim_saw(struct h_sim *s, const char *prefix)
{
    return h_sim_saw_since(s, 0, prefix);
}

void h_sim_dump(struct h_sim *s, size_t n)
{
    if (!s->reader_started)
        return;
    pthread_mutex_lock(&s->mu);
    size_t from = s->n > n ? s->n - n : 0;
    fprintf(stderr, "---- simulator stdout (%s/sim.out), last %zu of %zu lines:\n", s->dir,
            s->n - from, s->n);
    for (size_t i = from; i < s->n; i++)
        fprintf(stderr, "  %s\n", s->lines[i]);
    fprintf(stderr, "---- end of simulator stdout\n");
    pthread_mutex_unlock(&s->mu);
}

void h_sim_stop(struct h_sim *s)
{
    if (s->pid > 0) {
        static const char quit[] = "quit\n";
        ssize_t w = write(s->in_fd, quit, sizeof quit - 1);
        (void)w;
        int status;
        stop_child(s->pid, 0, 5000, &status); /* signal 0: just wait */
        s->pid = 0;
    }
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
    if (s->reader_started) {
        pthread_join(s->reader, NULL);
        s->reader_started = false;
    }
    if (s->out_fd >= 0)
        close(s->out_fd);
    s->out_fd = -1;
}

void h_sim_cleanup(struct h_sim *s, bool keep)
{
    if (!s->dir[0])
        return;
    h_sim_stop(s);
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[i]);
    free(s->lines);
    free(s->consumed);
    s->lines = NULL;
    s->consumed = NULL;
    s->n = s->cap = 0;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    if (!keep)
        rm_rf(s->dir);
    s->dir[0] = 0;
}

/* ------------------------------------------------------------------ */
/* Bridge                                                               */

/* environ without MODEM2MQTT_*: the test's command line decides. */
static char **clean_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; env && i < n; i++)
        if (!starts_with(environ[i], "MODEM2MQTT_"))
            env[k++] = environ[i];
    return env;
}

void h_bridge_start_at(const char *file, int line, struct h_bridge *br,
                       const struct h_broker *broker, const struct h_sim *sim, const char *base,
                       const char *config_json_extra)
{
    init();
    if (br->pid > 0)
        h_fail_at(file, line, "h_bridge_start: the bridge is already running");
    if (!br->dir[0]) {
        make_dir(file, line, br->dir, sizeof br->dir, "bridge");
        snprintf(br->config_path, sizeof br->config_path, "%s/config.json", br->dir);
        snprintf(br->log_path, sizeof br->log_path, "%s/bridge.log", br->dir);
        snprintf(br->state_dir, sizeof br->state_dir, "%s/state", br->dir);
        bool extra = config_json_extra && *config_json_extra;
        char *json = h_strdupf("{\"state_dir\":\"%s\"%s%s}\n", br->state_dir, extra ? "," : "",
                               extra ? config_json_extra : "");
        int rc = write_file(br->config_path, json);
        free(json);
        if (rc)
            h_fail_at(file, line, "writing %s: %s", br->config_path, strerror(-rc));
        if (br->uid && chown(br->dir, br->uid, (gid_t)br->uid) < 0)
            h_fail_at(file, line, "chown %s: %s", br->dir, strerror(errno));
    }
    snprintf(br->base, sizeof br->base, "%s", base ? base : "");

    int log = open(br->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        h_fail_at(file, line, "%s: %s", br->log_path, strerror(errno));
    br->starts++;
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr, "==== harness: bridge start #%d ====\n", br->starts);
    if (write(log, hdr, (size_t)hl) < 0) {
    }

    char *argv[12] = { (char *)M2M_BRIDGE_PATH, (char *)"-c", br->config_path,
                       (char *)"-H", (char *)broker->uri, (char *)"-l", (char *)"debug" };
    size_t argc = 7;
    if (sim) {
        argv[argc++] = (char *)"-p";
        argv[argc++] = (char *)sim->link;
    }
    if (base) {
        argv[argc++] = (char *)"-t";
        argv[argc++] = br->base;
    }
    char **env = clean_env();
    br->pid = spawn_as(file, line, argv, env, -1, log, log, br->uid);
    free(env);
    close(log);
    br->status = 0;
    g_watch = br;
}

bool h_bridge_running(struct h_bridge *br)
{
    if (br->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(br->pid, &status, WNOHANG);
    if (r == br->pid) {
        br->status = status;
        br->pid = 0;
        return false;
    }
    return true;
}

void h_bridge_stop_at(const char *file, int line, struct h_bridge *br)
{
    if (g_watch == br)
        g_watch = NULL;
    if (!h_bridge_running(br)) {
        char st[96];
        describe_status(br->status, st, sizeof st);
        h_fail_at(file, line, "h_bridge_stop: the bridge had already exited (%s)", st);
    }
    int status = 0;
    int t = h_ms(10000);
    bool exited = stop_child(br->pid, SIGTERM, t, &status);
    br->pid = 0;
    br->status = status;
    if (!exited)
        h_fail_at(file, line, "the bridge did not exit within %d ms of SIGTERM (killed)", t);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char st[96];
        describe_status(status, st, sizeof st);
        h_fail_at(file, line, "after SIGTERM the bridge ended with %s, expected exit status 0", st);
    }
}

void h_bridge_kill_at(const char *file, int line, struct h_bridge *br)
{
    if (g_watch == br)
        g_watch = NULL;
    if (!h_bridge_running(br)) {
        char st[96];
        describe_status(br->status, st, sizeof st);
        h_fail_at(file, line, "h_bridge_kill: the bridge had already exited (%s)", st);
    }
    int status;
    stop_child(br->pid, SIGKILL, 5000, &status);
    br->pid = 0;
    br->status = status;
}

void h_bridge_dump_log(const struct h_bridge *br, size_t n)
{
    if (br->log_path[0])
        dump_file_tail("bridge log", br->log_path, n);
}

int h_bridge_log_count(const struct h_bridge *br, const char *text)
{
    FILE *f = fopen(br->log_path, "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return n;
}

int h_bridge_log_line(const struct h_bridge *br, const char *text)
{
    FILE *f = fopen(br->log_path, "r");
    char line[1024];
    int n = 0, found = 0;
    while (!found && f && fgets(line, sizeof line, f)) {
        n++;
        if (strstr(line, text))
            found = n;
    }
    if (f)
        fclose(f);
    return found;
}

void h_bridge_wait_log_at(const char *file, int line, const struct h_bridge *br,
                          const char *text, int count, int timeout_ms)
{
    int64_t deadline = now_ms() + h_ms(timeout_ms);
    int n;

    while ((n = h_bridge_log_count(br, text)) < count) {
        check_watch(file, line, text);
        if (now_ms() >= deadline)
            h_fail_at(file, line, "%d of %d bridge log lines with '%s' within %d ms", n, count,
                      text, h_ms(timeout_ms));
        sleep_ms(50);
    }
}

void h_bridge_cleanup(struct h_bridge *br, bool keep)
{
    if (g_watch == br)
        g_watch = NULL;
    int status;
    if (br->pid > 0)
        stop_child(br->pid, SIGTERM, 5000, &status);
    br->pid = 0;
    if (!keep)
        rm_rf(br->dir);
    br->dir[0] = 0;
}

/* ------------------------------------------------------------------ */
/* MQTT                                                                 */

struct op {
    struct h_mqtt *c;
    bool done;
    bool ok;
    int rc;
    int granted;
    bool session_present;
};

static void op_finish(struct op *op, bool ok, int rc, int granted, bool sp)
{
    pthread_mutex_lock(&op->c->mu);
    op->ok = ok;
    op->rc = rc;
    op->granted = granted;
    op->session_present = sp;
    op->done = true;
    pthread_cond_broadcast(&op->c->cv);
    pthread_mutex_unlock(&op->c->mu);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *r)
{
    op_finish(ctx, true, 0, 0, r ? r->alt.connect.sessionPresent != 0 : false);
}
static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
    op_finish(ctx, false, r ? r->code : -1, 0, false);
}
static void on_connect_ok5(void *ctx, MQTTAsync_successData5 *r)
{
    op_finish(ctx, true, 0, 0, r ? r->alt.connect.sessionPresent != 0 : false);
}
static void on_connect_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
    op_finish(ctx, false, r ? (r->code ? r->code : (int)r->reasonCode) : -1, 0, false);
}
static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
    op_finish(ctx, true, 0, r ? r->alt.qos : -1, false);
}
static void on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
    op_finish(ctx, false, r ? r->code : -1, 0, false);
}
static void on_sub_ok5(void *ctx, MQTTAsync_successData5 *r)
{
    op_finish(ctx, true, 0, r ? (int)r->reasonCode : -1, false);
}
static void on_sub_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
    op_finish(ctx, false, r ? (int)r->reasonCode : -1, 0, false);
}
static void on_pub_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    op_finish(ctx, true, 0, 0, false);
}
static void on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
    op_finish(ctx, false, r ? r->code : -1, 0, false);
}
static void on_pub_ok5(void *ctx, MQTTAsync_successData5 *r)
{
    op_finish(ctx, true, r ? (int)r->reasonCode : 0, 0, false);
}
static void on_pub_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
    op_finish(ctx, false, r ? (int)r->reasonCode : -1, 0, false);
}

/* Waits for op; false on timeout. */
static bool op_wait(struct op *op, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&op->c->mu);
    while (!op->done && now_ms() < deadline) {
        struct timespec ts = abs_until(deadline, 1000);
        pthread_cond_timedwait(&op->c->cv, &op->c->mu, &ts);
    }
    bool done = op->done;
    pthread_mutex_unlock(&op->c->mu);
    return done;
}

static void conn_lost(void *ctx, char *cause)
{
    (void)cause;
    struct h_mqtt *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->connected = false;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int msg_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct h_mqtt *c = ctx;
    struct h_msg *msg = calloc(1, sizeof *msg);
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    if (msg) {
        msg->topic = strndup(topic, tl);
        msg->len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
        msg->payload = malloc(msg->len + 1);
        if (msg->payload) {
            if (msg->len)
                memcpy(msg->payload, m->payload, msg->len);
            msg->payload[msg->len] = 0;
        }
        msg->qos = m->qos;
        msg->retained = m->retained != 0;
        MQTTProperty *corr =
            MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
        if (corr) {
            msg->correlation_len = (size_t)corr->value.data.len;
            msg->correlation = strndup(corr->value.data.data, msg->correlation_len);
        }
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    if (!msg || !msg->topic || !msg->payload)
        abort();
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = msg;
    else
        c->head = msg;
    c->tail = msg;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 1;
}

/* One connect attempt; 0 or the failure code. */
static int mqtt_connect_once(struct h_mqtt *c, int timeout_ms)
{
    struct op op = { .c = c };
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions o5 = MQTTAsync_connectOptions_initializer5;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTAsync_connectOptions *opts = &o;
    if (c->mqtt_version == 5) {
        opts = &o5;
        o5.cleanstart = c->clean;
        if (!c->clean) {
            /* Keep the session across a broker restart and disconnects. */
            MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
                               .value.integer4 = 3600 };
            MQTTProperties_add(&props, &p);
            o5.connectProperties = &props;
        }
        o5.onSuccess5 = on_connect_ok5;
        o5.onFailure5 = on_connect_fail5;
    } else {
        o.cleansession = c->clean;
        o.onSuccess = on_connect_ok;
        o.onFailure = on_connect_fail;
        o.MQTTVersion = MQTTVERSION_3_1_1;
    }
    opts->keepAliveInterval = 20;
    opts->connectTimeout = (timeout_ms + 999) / 1000;
    opts->context = &op;
    int rc = MQTTAsync_connect(c->cli, opts);
    if (rc == MQTTASYNC_SUCCESS) {
        if (!op_wait(&op, timeout_ms + 1000))
            rc = -1000;
        else
            rc = op.ok ? 0 : (op.rc ? op.rc : -1);
    }
    MQTTProperties_free(&props);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        c->connected = true;
        c->session_present = op.session_present;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

static void mqtt_connect_until(const char *file, int line, struct h_mqtt *c, int timeout_ms)
{
    int64_t deadline = now_ms() + h_ms(timeout_ms);
    int rc;
    for (;;) {
        int left = (int)(deadline - now_ms());
        rc = mqtt_connect_once(c, left > 2000 ? 2000 : (left > 100 ? left : 100));
        if (rc == 0)
            return;
        if (now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    h_fail_at(file, line, "MQTT client '%s' could not connect to %s within %d ms (last rc %d)",
              c->client_id, c->uri, h_ms(timeout_ms), rc);
}

void h_mqtt_connect_at(const char *file, int line, struct h_mqtt *c, const char *uri,
                       const char *client_id, bool clean, int mqtt_version)
{
    init();
    memset(c, 0, sizeof *c);
    init_mu_cv(&c->mu, &c->cv);
    c->inited = true;
    snprintf(c->uri, sizeof c->uri, "%s", uri);
    snprintf(c->client_id, sizeof c->client_id, "%s", client_id);
    c->clean = clean;
    c->mqtt_version = mqtt_version;

    /* paho wants tcp://; mqtt:// works in recent versions but be explicit. */
    char server[80];
    snprintf(server, sizeof server, "tcp://%s", strncmp(uri, "mqtt://", 7) == 0 ? uri + 7 : uri);
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    MQTTAsync_createOptions co5 = MQTTAsync_createOptions_initializer5;
    MQTTAsync cli;
    int rc = MQTTAsync_createWithOptions(&cli, server, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                         mqtt_version == 5 ? &co5 : &co);
    if (rc != MQTTASYNC_SUCCESS)
        h_fail_at(file, line, "MQTTAsync_create(%s): %d", server, rc);
    c->cli = cli;
    MQTTAsync_setCallbacks(cli, c, conn_lost, msg_arrived, NULL);
    mqtt_connect_until(file, line, c, 10000);
}

static void mqtt_sub(const char *file, int line, struct h_mqtt *c, const char *topic)
{
    struct op op = { .c = c };
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.context = &op;
    if (c->mqtt_version == 5) {
        ro.onSuccess5 = on_sub_ok5;
        ro.onFailure5 = on_sub_fail5;
    } else {
        ro.onSuccess = on_sub_ok;
        ro.onFailure = on_sub_fail;
    }
    int rc = MQTTAsync_subscribe(c->cli, topic, 1, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        h_fail_at(file, line, "MQTTAsync_subscribe(%s): %d", topic, rc);
    if (!op_wait(&op, h_ms(H_TIMEOUT_MS)))
        h_fail_at(file, line, "no SUBACK for '%s' within %d ms", topic, h_ms(H_TIMEOUT_MS));
    if (!op.ok || op.granted != 1)
        h_fail_at(file, line, "subscribing '%s': ok %d, granted QoS / reason %d (want 1)", topic,
                  op.ok, op.granted);
}

void h_mqtt_subscribe_at(const char *file, int line, struct h_mqtt *c, const char *topic)
{
    mqtt_sub(file, line, c, topic);
    if (c->n_subs < H_MQTT_MAX_SUBS)
        c->subs[c->n_subs++] = strdup(topic);
}

void h_mqtt_publish_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                       const void *payload, size_t len, int qos, bool retain)
{
    struct op op = { .c = c };
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.context = &op;
    if (c->mqtt_version == 5) {
        ro.onSuccess5 = on_pub_ok5;
        ro.onFailure5 = on_pub_fail5;
    } else {
        ro.onSuccess = on_pub_ok;
        ro.onFailure = on_pub_fail;
    }
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = (void *)payload;
    m.payloadlen = (int)len;
    m.qos = qos;
    m.retained = retain;
    int rc = MQTTAsync_sendMessage(c->cli, topic, &m, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        h_fail_at(file, line, "MQTTAsync_sendMessage(%s): %d", topic, rc);
    if (!op_wait(&op, h_ms(H_TIMEOUT_MS)))
        h_fail_at(file, line, "publish on '%s' not acknowledged within %d ms", topic,
                  h_ms(H_TIMEOUT_MS));
    if (!op.ok)
        h_fail_at(file, line, "publish on '%s' failed: %d", topic, op.rc);
}

void h_mqtt_request5_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                        const char *payload, const char *response_topic, const char *correlation)
{
    if (c->mqtt_version != 5)
        h_fail_at(file, line, "h_mqtt_request5 needs a client made by h_mqtt_connect5");
    struct op op = { .c = c };
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.context = &op;
    ro.onSuccess5 = on_pub_ok5;
    ro.onFailure5 = on_pub_fail5;
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = (void *)payload;
    m.payloadlen = (int)strlen(payload);
    m.qos = 1;
    MQTTProperty rt = { .identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC };
    rt.value.data.data = (char *)response_topic;
    rt.value.data.len = (int)strlen(response_topic);
    MQTTProperties_add(&m.properties, &rt);
    if (correlation) {
        MQTTProperty cd = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
        cd.value.data.data = (char *)correlation;
        cd.value.data.len = (int)strlen(correlation);
        MQTTProperties_add(&m.properties, &cd);
    }
    int rc = MQTTAsync_sendMessage(c->cli, topic, &m, &ro);
    MQTTProperties_free(&m.properties);
    if (rc != MQTTASYNC_SUCCESS)
        h_fail_at(file, line, "MQTTAsync_sendMessage(%s): %d", topic, rc);
    if (!op_wait(&op, h_ms(H_TIMEOUT_MS)))
        h_fail_at(file, line, "request on '%s' not acknowledged within %d ms", topic,
                  h_ms(H_TIMEOUT_MS));
    if (!op.ok || op.rc >= 0x80)
        h_fail_at(file, line, "request on '%s' failed: %d", topic, op.rc);
}

void h_mqtt_reconnect_at(const char *file, int line, struct h_mqtt *c, int timeout_ms)
{
    pthread_mutex_lock(&c->mu);
    bool connected = c->connected;
    pthread_mutex_unlock(&c->mu);
    if (connected && MQTTAsync_isConnected(c->cli))
        return;
    mqtt_connect_until(file, line, c, timeout_ms);
    if (!c->session_present) {
        if (!c->clean)
            print_error("harness: note: the broker did not keep the session of '%s'\n",
                        c->client_id);
        for (size_t i = 0; i < c->n_subs; i++)
            mqtt_sub(file, line, c, c->subs[i]);
    }
}

void h_msg_free(struct h_msg *m)
{
    if (!m)
        return;
    free(m->topic);
    free(m->payload);
    free(m->correlation);
    free(m);
}

/* Unlinks the first message on topic; c->mu held. */
static struct h_msg *take_locked(struct h_mqtt *c, const char *topic)
{
    struct h_msg *prev = NULL;
    for (struct h_msg *m = c->head; m; prev = m, m = m->next) {
        if (strcmp(m->topic, topic) != 0)
            continue;
        if (prev)
            prev->next = m->next;
        else
            c->head = m->next;
        if (c->tail == m)
            c->tail = prev;
        m->next = NULL;
        return m;
    }
    return NULL;
}

static struct h_msg *take_wait(const char *file, int line, struct h_mqtt *c, const char *topic,
                               int64_t deadline, bool watch)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        struct h_msg *m = take_locked(c, topic);
        if (m) {
            c->last_retained = m->retained;
            c->last_qos = m->qos;
            snprintf(c->last_correlation, sizeof c->last_correlation, "%s",
                     m->correlation ? m->correlation : "");
            pthread_mutex_unlock(&c->mu);
            return m;
        }
        if (now_ms() >= deadline)
            break;
        if (watch) {
            pthread_mutex_unlock(&c->mu);
            char what[300];
            snprintf(what, sizeof what, "a message on '%s'", topic);
            check_watch(file, line, what);
            pthread_mutex_lock(&c->mu);
        }
        struct timespec ts = abs_until(deadline, 100);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct h_msg *h_mqtt_take(struct h_mqtt *c, const char *topic, int timeout_ms)
{
    return take_wait(__FILE__, __LINE__, c, topic, now_ms() + timeout_ms, false);
}

size_t h_mqtt_pending(struct h_mqtt *c, const char *topic)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    for (struct h_msg *m = c->head; m; m = m->next)
        n += strcmp(m->topic, topic) == 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void dump_queue(struct h_mqtt *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    fprintf(stderr, "---- messages received but not taken by the test (client %s):\n",
            c->client_id);
    for (struct h_msg *m = c->head; m && n < 20; m = m->next, n++)
        fprintf(stderr, "  %s%s: %.300s\n", m->topic, m->retained ? " (retained)" : "",
                m->payload);
    fprintf(stderr, "---- end (%zu shown)\n", n);
    pthread_mutex_unlock(&c->mu);
}

static struct h_msg *take_or_fail(const char *file, int line, struct h_mqtt *c, const char *topic,
                                  int timeout_ms, const char *what)
{
    int t = h_ms(timeout_ms);
    struct h_msg *m = take_wait(file, line, c, topic, now_ms() + t, true);
    if (!m) {
        dump_queue(c);
        h_fail_at(file, line, "timeout (%d ms) waiting for %s on '%s'%s", t, what, topic,
                  c->connected ? "" : " (test client not connected)");
    }
    return m;
}

size_t h_mqtt_wait_at(const char *file, int line, struct h_mqtt *c, const char *topic, char *out,
                      size_t size, int timeout_ms)
{
    struct h_msg *m = take_or_fail(file, line, c, topic, timeout_ms, "a message");
    if (out && size)
        snprintf(out, size, "%s", m->payload);
    size_t len = m->len;
    h_msg_free(m);
    return len;
}

cJSON *h_mqtt_wait_json_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                           int timeout_ms)
{
    struct h_msg *m = take_or_fail(file, line, c, topic, timeout_ms, "a JSON message");
    cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
    if (!j) {
        char copy[600];
        snprintf(copy, sizeof copy, "%s", m->payload);
        h_msg_free(m);
        h_fail_at(file, line, "message on '%s' is not JSON: '%s'", topic, copy);
    }
    h_msg_free(m);
    return j;
}

void h_mqtt_wait_payload_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                            const char *payload, int timeout_ms)
{
    int64_t deadline = now_ms() + h_ms(timeout_ms);
    char last[256] = "(none)";
    for (;;) {
        struct h_msg *m = take_wait(file, line, c, topic, deadline, true);
        if (!m)
            break;
        bool eq = m->len == strlen(payload) && memcmp(m->payload, payload, m->len) == 0;
        snprintf(last, sizeof last, "'%s'", m->payload);
        h_msg_free(m);
        if (eq)
            return;
    }
    dump_queue(c);
    h_fail_at(file, line, "timeout (%d ms) waiting for '%s' on '%s'; last payload there: %s",
              h_ms(timeout_ms), payload, topic, last);
}

cJSON *h_mqtt_wait_json_where_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                                 const char *key, const char *value, int timeout_ms)
{
    int64_t deadline = now_ms() + h_ms(timeout_ms);
    char last[600] = "(none)";
    for (;;) {
        struct h_msg *m = take_wait(file, line, c, topic, deadline, true);
        if (!m)
            break;
        snprintf(last, sizeof last, "'%s'", m->payload);
        cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
        h_msg_free(m);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
        if (cJSON_IsString(v) && strcmp(v->valuestring, value) == 0)
            return j;
        cJSON_Delete(j);
    }
    dump_queue(c);
    h_fail_at(file, line, "timeout (%d ms) waiting for \"%s\":\"%s\" on '%s'; last payload there: %s",
              h_ms(timeout_ms), key, value, topic, last);
}

void h_mqtt_disconnect(struct h_mqtt *c)
{
    if (!c->inited)
        return;
    if (c->cli) {
        MQTTAsync cli = c->cli;
        if (MQTTAsync_isConnected(cli)) {
            MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
            d.timeout = 1000;
            struct op op = { .c = c };
            d.context = &op;
            d.onSuccess = on_pub_ok;
            d.onFailure = on_pub_fail;
            if (MQTTAsync_disconnect(cli, &d) == MQTTASYNC_SUCCESS)
                op_wait(&op, 2000);
        }
        MQTTAsync_destroy(&cli);
        c->cli = NULL;
    }
    for (struct h_msg *m = c->head, *n; m; m = n) {
        n = m->next;
        h_msg_free(m);
    }
    c->head = c->tail = NULL;
    for (size_t i = 0; i < c->n_subs; i++)
        free(c->subs[i]);
    c->n_subs = 0;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    c->inited = false;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

static const char *type_name(const cJSON *v)
{
    if (!v)
        return "missing";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "invalid";
}

static void json_fail(const char *file, int line, const cJSON *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
static void json_fail(const char *file, int line, const cJSON *o, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    char copy[1200];
    snprintf(copy, sizeof copy, "%s", text ? text : "(null)");
    free(text);
    h_fail_at(file, line, "%s in %s", msg, copy);
}

static const cJSON *member(const char *file, int line, const cJSON *o, const char *key)
{
    if (!cJSON_IsObject(o))
        json_fail(file, line, o, "not a JSON object (looking for \"%s\")", key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        json_fail(file, line, o, "no member \"%s\"", key);
    return v;
}

cJSON *h_json_get_at(const char *file, int line, const cJSON *o, const char *key, int type)
{
    const cJSON *v = member(file, line, o, key);
    if ((v->type & 0xFF) != type)
        json_fail(file, line, o, "\"%s\" is %s, expected %s", key, type_name(v),
                  type == cJSON_Object ? "an object" : "an array");
    return (cJSON *)v;
}

const char *h_json_str_at(const char *file, int line, const cJSON *o, const char *key)
{
    const cJSON *v = member(file, line, o, key);
    if (!cJSON_IsString(v))
        json_fail(file, line, o, "\"%s\" is %s, expected a string", key, type_name(v));
    return v->valuestring;
}

long long h_json_int_at(const char *file, int line, const cJSON *o, const char *key)
{
    const cJSON *v = member(file, line, o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble)
        json_fail(file, line, o, "\"%s\" is %s, expected an integer", key, type_name(v));
    return (long long)v->valuedouble;
}

bool h_json_bool_at(const char *file, int line, const cJSON *o, const char *key)
{
    const cJSON *v = member(file, line, o, key);
    if (!cJSON_IsBool(v))
        json_fail(file, line, o, "\"%s\" is %s, expected a boolean", key, type_name(v));
    return cJSON_IsTrue(v);
}

void h_json_str_eq_at(const char *file, int line, const cJSON *o, const char *key, const char *want)
{
    const char *got = h_json_str_at(file, line, o, key);
    if (strcmp(got, want) != 0)
        json_fail(file, line, o, "\"%s\" is \"%s\", expected \"%s\"", key, got, want);
}

void h_json_int_eq_at(const char *file, int line, const cJSON *o, const char *key, long long want)
{
    long long got = h_json_int_at(file, line, o, key);
    if (got != want)
        json_fail(file, line, o, "\"%s\" is %lld, expected %lld", key, got, want);
}

void h_json_bool_eq_at(const char *file, int line, const cJSON *o, const char *key, bool want)
{
    bool got = h_json_bool_at(file, line, o, key);
    if (got != want)
        json_fail(file, line, o, "\"%s\" is %s, expected %s", key, got ? "true" : "false",
                  want ? "true" : "false");
}

void h_json_eq_at(const char *file, int line, const cJSON *o, const char *key,
                  const char *want_json)
{
    cJSON *want = cJSON_Parse(want_json);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(o, key);
    bool eq = want && got && cJSON_Compare(got, want, true);

    cJSON_Delete(want);
    if (!eq)
        json_fail(file, line, o, "\"%s\" is not %s", key, want_json);
}

/* ------------------------------------------------------------------ */
/* Environment                                                          */

int h_env_setup(void **state)
{
    struct h_env *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    e->sim.in_fd = e->sim.out_fd = -1;
    *state = e;
    return 0;
}

void h_env_up_at(const char *file, int line, struct h_env *e, const struct h_env_opts *opts)
{
    if (opts)
        e->opts = *opts;
    snprintf(e->base, sizeof e->base, "m2mtest");
    snprintf(e->t_avail, sizeof e->t_avail, "%s/availability", e->base);
    snprintf(e->t_status, sizeof e->t_status, "%s/status", e->base);
    snprintf(e->t_info, sizeof e->t_info, "%s/info", e->base);
    snprintf(e->t_send, sizeof e->t_send, "%s/sms/send", e->base);
    snprintf(e->t_result, sizeof e->t_result, "%s/sms/send/result", e->base);
    snprintf(e->t_received, sizeof e->t_received, "%s/sms/received", e->base);

    h_broker_start_at(file, line, &e->broker);
    h_sim_start_at(file, line, &e->sim, e->opts.sim_args);
    char id[64];
    snprintf(id, sizeof id, "m2m-it-%ld", (long)getpid());
    h_mqtt_connect_at(file, line, &e->mqtt, e->broker.uri, id, !e->opts.persistent_client, 4);
    char all[128];
    snprintf(all, sizeof all, "%s/#", e->base);
    h_mqtt_subscribe_at(file, line, &e->mqtt, all);
    if (!e->opts.no_bridge)
        h_env_start_bridge_at(file, line, e);
}

void h_env_start_bridge_at(const char *file, int line, struct h_env *e)
{
    h_bridge_start_at(file, line, &e->bridge, &e->broker, &e->sim, e->base, e->opts.config);
    h_wait_ready_at(file, line, e);
}

void h_wait_ready_at(const char *file, int line, struct h_env *e)
{
    h_mqtt_wait_payload_at(file, line, &e->mqtt, e->t_avail, "online", H_READY_TIMEOUT_MS);
    h_wait_modem_ready_at(file, line, e);
}

void h_wait_modem_ready_at(const char *file, int line, struct h_env *e)
{
    cJSON *st = h_mqtt_wait_json_where_at(file, line, &e->mqtt, e->t_status, "state", "ready",
                                          H_READY_TIMEOUT_MS);
    cJSON_Delete(st);
}

/* Sanitizer reports in the bridge log (a build with M2M_SANITIZE). */
static bool log_has_sanitizer_report(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool hit = false;
    while (!hit && getline(&line, &cap, f) >= 0)
        hit = strstr(line, "runtime error:") || strstr(line, "ERROR: AddressSanitizer") ||
              strstr(line, "ERROR: LeakSanitizer") || strstr(line, "WARNING: ThreadSanitizer");
    free(line);
    fclose(f);
    return hit;
}

int h_env_down(struct h_env *e)
{
    int rc = 0;
    g_watch = NULL;
    /* A passing test still fails if the bridge does not end cleanly on
     * SIGTERM (exit status 0) or a sanitizer reported something. */
    if (e->bridge.pid > 0) {
        int status = 0;
        bool exited = stop_child(e->bridge.pid, SIGTERM, h_ms(10000), &status);
        e->bridge.pid = 0;
        if (!exited || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char st[96];
            describe_status(status, st, sizeof st);
            print_error("ERROR: teardown: after SIGTERM the bridge ended with %s%s, expected exit "
                        "status 0\n", exited ? "" : "a SIGKILL after 10 s: ", st);
            rc = -1;
        }
    }
    if (e->bridge.log_path[0] && log_has_sanitizer_report(e->bridge.log_path)) {
        print_error("ERROR: teardown: sanitizer report in %s\n", e->bridge.log_path);
        rc = -1;
    }
    if (rc)
        e->passed = false;
    bool keep = !e->passed || keep_dirs();
    if (!e->passed) {
        fprintf(stderr, "==== harness: the test failed; logs follow (kept in the dirs named) ====\n");
        h_bridge_dump_log(&e->bridge, 80);
        h_sim_dump(&e->sim, 40);
        if (e->broker.dir[0]) {
            char log[320];
            snprintf(log, sizeof log, "%s/mosquitto.log", e->broker.dir);
            dump_file_tail("mosquitto log", log, 15);
        }
    }
    h_bridge_cleanup(&e->bridge, keep);
    h_mqtt_disconnect(&e->mqtt);
    h_sim_cleanup(&e->sim, keep);
    h_sim_cleanup(&e->sim2, keep);
    h_broker_cleanup(&e->broker, keep);
    return rc;
}

int h_env_teardown(void **state)
{
    struct h_env *e = *state;
    int rc = 0;
    if (e) {
        rc = h_env_down(e);
        free(e);
    }
    *state = NULL;
    return rc;
}

cJSON *h_retained_json_at(const char *file, int line, struct h_env *e, const char *topic)
{
    struct h_mqtt late;
    h_mqtt_connect_at(file, line, &late, e->broker.uri, "late", true, 4);
    h_mqtt_subscribe_at(file, line, &late, topic);
    struct h_msg *m = h_mqtt_take(&late, topic, h_ms(H_TIMEOUT_MS));
    h_mqtt_disconnect(&late);
    if (!m)
        h_fail_at(file, line, "no retained message on '%s'", topic);
    bool retained = m->retained;
    cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
    char copy[512];
    snprintf(copy, sizeof copy, "%s", m->payload);
    h_msg_free(m);
    if (!retained)
        h_fail_at(file, line, "the message on '%s' is not retained", topic);
    if (!j)
        h_fail_at(file, line, "'%s' on '%s' is not JSON", copy, topic);
    return j;
}

/* B/stats/get's result: the figures beside id and ok. */
cJSON *h_stats_get_at(const char *file, int line, struct h_env *e, int id)
{
    char t[160], payload[32], rt[168];
    snprintf(t, sizeof t, "%s/stats/get", e->base);
    snprintf(rt, sizeof rt, "%s/result", t);
    snprintf(payload, sizeof payload, "{\"id\":%d}", id);
    h_mqtt_publish_at(file, line, &e->mqtt, t, payload, strlen(payload), 1, false);
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, rt, H_TIMEOUT_MS);
    h_json_int_eq_at(file, line, r, "id", id);
    h_json_bool_eq_at(file, line, r, "ok", true);
    return r;
}

int h_run_health(struct h_env *e, char *out, size_t size)
{
    char cmd[1024];
    FILE *p;
    size_t n;
    int st;

    snprintf(cmd, sizeof cmd, "timeout 10 '%s' --health -c '%s' 2>&1", M2M_BRIDGE_PATH,
             e->bridge.config_path);
    p = popen(cmd, "r");
    if (!p)
        h_fail("popen: cannot run %s", cmd);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    st = pclose(p);
    if (st < 0 || !WIFEXITED(st))
        h_fail("'%s' did not exit normally", cmd);
    return WEXITSTATUS(st);
}

void h_wait_health_at(const char *file, int line, struct h_env *e, int want_code,
                       const char *want_text)
{
    struct timespec pause = { 0, 50 * 1000 * 1000 };
    int budget = h_ms(H_TIMEOUT_MS) / 50;
    char out[512] = "";
    int code = -1;

    for (int i = 0; i <= budget; i++) {
        code = h_run_health(e, out, sizeof out);
        if (code == want_code && strstr(out, want_text))
            return;
        nanosleep(&pause, NULL);
    }
    h_fail_at(file, line, "--health: exit %d '%s', want exit %d '%s'", code, out, want_code,
              want_text);
}

void h_command(struct h_env *e, const char *suffix, const char *payload)
{
    char t[160];
    snprintf(t, sizeof t, "%s/%s", e->base, suffix);
    h_mqtt_publish(&e->mqtt, t, payload, 1, false);
}

/* Generous: some commands wait behind slow ones (a network scan). */
#define RESULT_TIMEOUT_MS 30000

cJSON *h_result_at(const char *file, int line, struct h_env *e, const char *suffix)
{
    char t[160];
    snprintf(t, sizeof t, "%s/%s/result", e->base, suffix);
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, t, RESULT_TIMEOUT_MS);
    if (e->mqtt.last_retained || e->mqtt.last_qos != 1)
        h_fail_at(file, line, "result retained=%d qos=%d", e->mqtt.last_retained,
                  e->mqtt.last_qos);
    return r;
}

void h_expect_ok_at(const char *file, int line, struct h_env *e, const char *suffix)
{
    cJSON *r = h_result_at(file, line, e, suffix);
    h_json_bool_eq_at(file, line, r, "ok", true);
    cJSON_Delete(r);
}

void h_expect_error_at(const char *file, int line, struct h_env *e, const char *suffix,
                       const char *code, const char *want)
{
    cJSON *r = h_result_at(file, line, e, suffix);
    h_json_bool_eq_at(file, line, r, "ok", false);
    const cJSON *err = h_json_get_at(file, line, r, "error", cJSON_Object);
    h_json_str_eq_at(file, line, err, "code", code);
    const char *msg = h_json_str_at(file, line, err, "message");
    if (!*msg)
        h_fail_at(file, line, "error.message is empty");
    if (want && !strstr(msg, want))
        h_fail_at(file, line, "message \"%s\" does not say \"%s\"", msg, want);
    cJSON_Delete(r);
}
