/*
 * bond: the CNI plugin as a node runs it. A small static program that hands the request to
 * the node agent (`bondctl agent`, bondctl/cni/agent.py) when one is listening, and otherwise
 * takes the direct path: the Python runtime next to it (launcher.c, included below).
 *
 * Agent mode, one request per connection (frames in bondctl/cni/wire.py):
 *   1. connect to $BONDCTL_AGENT_SOCKET (default /run/bondctl/agent.sock; "" or "off": never)
 *   2. send the environment, with our stdin, stdout, stderr, our network namespace and
 *      CNI_NETNS (opened here, so the agent never resolves our paths) attached as fds
 *   3. "A": the agent took the request; from here on it is never sent anywhere else
 *   4. "X": exit with the agent child's exit status, or die of the signal that killed it
 * Before step 3 (no socket, connection refused, a refusal after an upgrade changed the
 * protocol, the agent going away) nothing ran: we take the direct path with the same stdin
 * and environment, so the result is the same. stdin is never read here: the agent's child,
 * or the direct path, reads it itself.
 */
#define _GNU_SOURCE
#define BOND_SHIM
#include "launcher.c"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define DEFAULT_SOCKET "/run/bondctl/agent.sock"
#define PROTOCOL 1
#define NETNS_FD 0x1
#define ACCEPT_WAIT_MS 60000 /* the agent answers within milliseconds, or seconds when a burst
                                of pods queues up behind its forks; a wedged one must not hang
                                the runtime for ever */

extern char **environ;

struct reply {
    char kind;
    int32_t value;
};

/* After acceptance a failure is the request's: a CNI error, never a retry. */
static int lost(const char *why) {
    printf("{\"cniVersion\": \"1.1.0\", \"code\": 11, \"msg\": \"bond: %s\", "
           "\"details\": \"the request was taken by the node agent (bondctl agent); see its "
           "log\"}\n", why);
    fflush(stdout);
    return 1;
}

static int read_full(int fd, void *buf, size_t n, int timeout_ms) {
    size_t got = 0;
    while (got < n) {
        if (timeout_ms >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int r = poll(&p, 1, timeout_ms);
            if (r == 0)
                return -2;
            if (r < 0 && errno != EINTR)
                return -1;
            if (r < 0)
                continue;
        }
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k == 0)
            return -1;
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

/* One reply frame: 0, -1 when the connection ended, -2 on timeout. */
static int read_reply(int fd, struct reply *out, int timeout_ms) {
    unsigned char head[12];
    int r = read_full(fd, head, sizeof head, timeout_ms);
    if (r)
        return r;
    uint32_t value, len;
    memcpy(&value, head + 4, 4);
    memcpy(&len, head + 8, 4);
    out->kind = (char)head[0];
    out->value = (int32_t)ntohl(value);
    len = ntohl(len);
    char skip[256];
    while (len > 0) { /* the message is for the agent's log and for people, not for us */
        size_t n = len < sizeof skip ? len : sizeof skip;
        if ((r = read_full(fd, skip, n, timeout_ms)))
            return r;
        len -= (uint32_t)n;
    }
    return 0;
}

static int send_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

static int connect_agent(void) {
    const char *path = getenv("BONDCTL_AGENT_SOCKET");
    if (path == NULL)
        path = DEFAULT_SOCKET;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (path[0] == '\0' || strcmp(path, "off") == 0 || strlen(path) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send the request; 0 when it is on its way. */
static int send_request(int sock) {
    size_t env_len = 0;
    for (char **e = environ; *e; e++)
        env_len += strlen(*e) + 1;
    char *frame = malloc(16 + env_len);
    if (frame == NULL)
        return -1;
    char *p = frame + 16;
    for (char **e = environ; *e; e++) {
        size_t n = strlen(*e) + 1;
        memcpy(p, *e, n);
        p += n;
    }

    int fds[5] = {0, 1, 2, -1, -1}, nfds = 4, flags = 0, netns_errno = 0;
    for (int i = 0; i < 3; i++)
        if (fcntl(i, F_GETFD) < 0) { /* a closed stdio: let the direct path meet it as is */
            free(frame);
            return -1;
        }
    fds[3] = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fds[3] < 0) {
        free(frame);
        return -1;
    }
    const char *netns = getenv("CNI_NETNS");
    if (netns != NULL && netns[0] != '\0') {
        /* O_NONBLOCK: a FIFO planted at the path must not hang us (the agent then refuses
         * it as no namespace, as the direct path does). */
        fds[4] = open(netns, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fds[4] >= 0) {
            nfds = 5;
            flags |= NETNS_FD;
        } else {
            netns_errno = errno;
        }
    }

    uint16_t version = htons(PROTOCOL), fl = htons((uint16_t)flags);
    uint32_t err = htonl((uint32_t)netns_errno), len = htonl((uint32_t)env_len);
    memcpy(frame, "BNDA", 4);
    memcpy(frame + 4, &version, 2);
    memcpy(frame + 6, &fl, 2);
    memcpy(frame + 8, &err, 4);
    memcpy(frame + 12, &len, 4);

    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = frame, .iov_len = 16};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    ssize_t sent;
    do
        sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    int rc = sent == 16 ? send_all(sock, frame + 16, env_len) : -1;
    close(fds[3]);
    if (fds[4] >= 0)
        close(fds[4]);
    free(frame);
    return rc;
}

int main(int argc, char **argv) {
    int sock = connect_agent();
    if (sock < 0)
        return direct(argc, argv);
    struct reply r = {0, 0};
    int got = send_request(sock) == 0 ? read_reply(sock, &r, ACCEPT_WAIT_MS) : -1;
    if (got == -2) /* it may still take the request: going direct could run it twice */
        return lost("the node agent did not answer within 60 s");
    if (got != 0 || r.kind != 'A') {
        close(sock);
        return direct(argc, argv); /* nothing ran: the same request, the direct way */
    }
    if (read_reply(sock, &r, -1) != 0 || r.kind != 'X')
        return lost("the node agent ended before the request finished");
    close(sock);
    int status = r.value;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) { /* die as the direct path's process died */
        int sig = WTERMSIG(status);
        fflush(stdout);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        return 128 + sig;
    }
    return lost("the node agent sent an unknown status");
}
