/*
 * The compiled open-loop HTTP/1.1 client of the fidelity benchmark (built from this source by
 * benchmarks/openloop.py with the machine's C compiler; no binary is committed).
 *
 * Why compiled: the Python client's sender (time.sleep, then send) left 1.6 to 3.5 % of its sends
 * more than 1 ms late at load average 6 to 9 on a shared 2-core machine, even at real-time
 * priority; the interpreter's own pauses (the GIL handed to the receiver thread, allocation) are
 * on the send path. Here the sender is a plain loop: clock_nanosleep(TIMER_ABSTIME) to each due
 * time on CLOCK_MONOTONIC (an absolute deadline, so one slow wake-up does not push the next ones),
 * take an idle keep-alive connection to the request's server (or open one: open loop, never
 * waiting for an answer), write. A receiver thread waits on epoll and stamps each answer when its
 * last byte is read. Under SCHED_FIFO the sender runs one priority above the receiver.
 *
 *   openloop-c SCHEDULE PORTS REQUEST OUT [WARM]
 *   openloop-c --timer SECONDS      (the machine's floor: a bare 1-ms timer loop's late share)
 *
 * SCHEDULE: one line per request, "due_seconds port_index" (due sorted, from the start).
 * PORTS: comma-separated server ports on 127.0.0.1. REQUEST: the raw HTTP request, sent as is.
 * OUT: CSV "index,due,sent,done,status" (seconds from the start; done nan and status 0 when
 * the connection failed or no answer came). WARM: idle connections opened per port up front.
 * Prints "N sends, X% more than 1 ms late" on stdout; exit status 2 on bad input.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define LATE_S 0.001
#define BUFFER 65536
#define DRAIN_TIMEOUT_S 30.0
#define START_DELAY_S 0.5
/* The server closes a keep-alive connection idle for 5 s (runtime/server/http.py keep_alive_s);
   one idle for longer than this is closed here rather than reused, so no send meets a closing
   connection. */
#define STALE_S 2.0

typedef struct connection {
    int fd;
    int port_index;
    atomic_long request; /* -1 while idle */
    atomic_int closed;   /* set once by whoever closes it: the receiver or the sender */
    double idle_since;
    size_t used;
    char buffer[BUFFER];
    struct connection *next_idle;
} connection;

static int n_ports;
static int *ports;
static connection **idle; /* one stack of idle connections per port */
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static int epoll_fd;
static long count;
static double *due, *sent, *done;
static int *pick, *status;
static struct timespec start;
static atomic_long answered;

static double since_start(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) * 1e-9;
}

static void fail(const char *what) {
    fprintf(stderr, "openloop-c: %s: %s\n", what, strerror(errno));
    exit(1);
}

static connection *open_connection(int port_index) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fail("socket");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(ports[port_index])};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) fail("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connection *c = calloc(1, sizeof *c);
    if (c == NULL) fail("calloc");
    c->fd = fd;
    c->port_index = port_index;
    atomic_store(&c->request, -1);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0) fail("epoll_ctl");
    return c;
}

static void push_idle(connection *c) {
    c->idle_since = since_start();
    pthread_mutex_lock(&idle_lock);
    c->next_idle = idle[c->port_index];
    idle[c->port_index] = c;
    pthread_mutex_unlock(&idle_lock);
}

static void close_once(connection *c) {
    if (atomic_exchange(&c->closed, 1) == 0) {
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
}

/* The most recently used idle connection to the port that is still open and fresh, or NULL.
   The stack is last in, first out: below a stale connection every one is staler, so all go. */
static connection *pop_idle(int port_index) {
    double now = since_start();
    connection *stale = NULL;
    pthread_mutex_lock(&idle_lock);
    connection *c = idle[port_index];
    while (c != NULL && atomic_load(&c->closed)) c = c->next_idle;
    if (c != NULL && now - c->idle_since > STALE_S) {
        stale = c;
        c = NULL;
    }
    idle[port_index] = c != NULL ? c->next_idle : NULL;
    pthread_mutex_unlock(&idle_lock);
    for (; stale != NULL; stale = stale->next_idle) close_once(stale);
    return c;
}

/* The status once the whole response is in the buffer, else 0. */
static int complete(connection *c) {
    c->buffer[c->used < BUFFER ? c->used : BUFFER - 1] = '\0';
    char *end = strstr(c->buffer, "\r\n\r\n");
    if (end == NULL) return 0;
    long length = 0;
    for (char *line = strstr(c->buffer, "\r\n"); line != NULL && line < end;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) length = strtol(line + 17, NULL, 10);
    }
    if ((size_t)(end + 4 - c->buffer) + (size_t)length > c->used) return 0;
    int code = 0;
    if (sscanf(c->buffer, "HTTP/%*s %d", &code) != 1 || code == 0) code = -1;
    return code;
}

static void drop(connection *c) {
    long request = atomic_exchange(&c->request, -1);
    if (request >= 0) {
        status[request] = 0;
        done[request] = since_start();
        atomic_fetch_add(&answered, 1);
    }
    close_once(c);
}

static void *receive(void *unused) {
    (void)unused;
    struct epoll_event events[256];
    double give_up = due[count - 1] + START_DELAY_S + DRAIN_TIMEOUT_S;
    while (atomic_load(&answered) < count && since_start() < give_up) {
        int ready = epoll_wait(epoll_fd, events, 256, 100);
        for (int e = 0; e < ready; e++) {
            connection *c = events[e].data.ptr;
            if (atomic_load(&c->closed)) continue;
            ssize_t got = recv(c->fd, c->buffer + c->used, BUFFER - 1 - c->used, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (got <= 0) {
                drop(c);
                continue;
            }
            c->used += (size_t)got;
            int code = complete(c);
            if (code == 0) continue;
            long request = atomic_exchange(&c->request, -1);
            if (request >= 0) {
                done[request] = since_start();
                status[request] = code;
                atomic_fetch_add(&answered, 1);
            }
            c->used = 0;
            push_idle(c);
        }
    }
    return NULL;
}

static void read_schedule(const char *path) {
    FILE *file = fopen(path, "r");
    if (file == NULL) fail(path);
    long capacity = 1024;
    due = malloc(capacity * sizeof *due);
    pick = malloc(capacity * sizeof *pick);
    double when;
    int index;
    count = 0;
    while (fscanf(file, "%lf %d", &when, &index) == 2) {
        if (index < 0 || index >= n_ports) {
            fprintf(stderr, "openloop-c: schedule line %ld: port index %d, have %d ports\n",
                    count + 1, index, n_ports);
            exit(2);
        }
        if (count > 0 && when < due[count - 1]) {
            fprintf(stderr, "openloop-c: schedule line %ld: due times must be sorted\n", count + 1);
            exit(2);
        }
        if (count == capacity) {
            capacity *= 2;
            due = realloc(due, capacity * sizeof *due);
            pick = realloc(pick, capacity * sizeof *pick);
        }
        due[count] = when;
        pick[count] = index;
        count++;
    }
    fclose(file);
    if (count == 0) {
        fprintf(stderr, "openloop-c: schedule %s has no 'due port_index' lines\n", path);
        exit(2);
    }
}

/* The machine's own floor: a loop that only sleeps to a deadline every millisecond, with no
   client work at all; the share of wake-ups more than LATE_S late is what any client on this
   core at this priority would get at best. */
static int timer_floor(double seconds) {
    mlockall(MCL_CURRENT | MCL_FUTURE);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    long ticks = (long)(seconds * 1000), late = 0;
    double worst = 0;
    struct timespec at, now;
    clock_gettime(CLOCK_MONOTONIC, &at);
    for (long i = 0; i < ticks; i++) {
        at.tv_nsec += 1000000L;
        if (at.tv_nsec >= 1000000000L) {
            at.tv_sec += 1;
            at.tv_nsec -= 1000000000L;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double behind = (double)(now.tv_sec - at.tv_sec) + (double)(now.tv_nsec - at.tv_nsec) * 1e-9;
        if (behind > LATE_S) late++;
        if (behind > worst) worst = behind;
    }
    printf("%ld ticks, %.2f%% more than 1 ms late, worst %.2f ms\n", ticks,
           100.0 * (double)late / (double)ticks, worst * 1000);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--timer") == 0) return timer_floor(atof(argv[2]));
    if (argc < 5) {
        fprintf(stderr, "usage: openloop-c SCHEDULE PORTS REQUEST OUT [WARM] | --timer SECONDS\n");
        return 2;
    }
    int warm = argc > 5 ? atoi(argv[5]) : 16;
    n_ports = 1;
    for (char *p = argv[2]; *p; p++) n_ports += *p == ',';
    ports = calloc(n_ports, sizeof *ports);
    char *ports_text = strdup(argv[2]);
    char *token = strtok(ports_text, ",");
    for (int i = 0; i < n_ports; i++, token = strtok(NULL, ",")) {
        ports[i] = token ? atoi(token) : 0;
        if (ports[i] <= 0 || ports[i] > 65535) {
            fprintf(stderr, "openloop-c: PORTS must be comma-separated ports, got %s\n", argv[2]);
            return 2;
        }
    }
    read_schedule(argv[1]);
    FILE *request_file = fopen(argv[3], "rb");
    if (request_file == NULL) fail(argv[3]);
    char payload[BUFFER];
    size_t payload_size = fread(payload, 1, sizeof payload, request_file);
    fclose(request_file);

    sent = malloc(count * sizeof *sent);
    done = malloc(count * sizeof *done);
    status = calloc(count, sizeof *status);
    for (long i = 0; i < count; i++) sent[i] = done[i] = -1.0;
    /* No page faults or timer slack on the send path, where permitted. */
    mlockall(MCL_CURRENT | MCL_FUTURE);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    epoll_fd = epoll_create1(0);
    if (epoll_fd < 0) fail("epoll_create1");
    idle = calloc(n_ports, sizeof *idle);
    for (int p = 0; p < n_ports; p++)
        for (int i = 0; i < warm; i++) push_idle(open_connection(p));

    clock_gettime(CLOCK_MONOTONIC, &start);
    start.tv_nsec += (long)(START_DELAY_S * 1e9);
    if (start.tv_nsec >= 1000000000L) {
        start.tv_sec += 1;
        start.tv_nsec -= 1000000000L;
    }
    pthread_t receiver;
    if (pthread_create(&receiver, NULL, receive, NULL) != 0) fail("pthread_create");
    /* Under SCHED_FIFO the sender (this thread) runs one above the receiver: a wake-up for a
       send must not wait for the receiver to finish reading a batch of answers. */
    struct sched_param param;
    int policy;
    if (pthread_getschedparam(pthread_self(), &policy, &param) == 0 && policy == SCHED_FIFO) {
        param.sched_priority += 1;
        pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
    }

    long late = 0;
    for (long i = 0; i < count; i++) {
        struct timespec at = start;
        double whole = (double)(long)due[i];
        at.tv_sec += (time_t)whole;
        at.tv_nsec += (long)((due[i] - whole) * 1e9);
        if (at.tv_nsec >= 1000000000L) {
            at.tv_sec += 1;
            at.tv_nsec -= 1000000000L;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {
        }
        connection *c = pop_idle(pick[i]);
        if (c == NULL) c = open_connection(pick[i]);
        atomic_store(&c->request, i);
        sent[i] = since_start();
        if (sent[i] - due[i] > LATE_S) late++;
        /* Small: fits an idle connection's socket buffer at once. */
        if (send(c->fd, payload, payload_size, MSG_NOSIGNAL) != (ssize_t)payload_size) drop(c);
    }
    pthread_join(receiver, NULL);

    FILE *out = fopen(argv[4], "w");
    if (out == NULL) fail(argv[4]);
    fprintf(out, "index,due,sent,done,status\n");
    for (long i = 0; i < count; i++) {
        if (done[i] >= 0 && status[i] != 0)
            fprintf(out, "%ld,%.9f,%.9f,%.9f,%d\n", i, due[i], sent[i], done[i], status[i]);
        else
            fprintf(out, "%ld,%.9f,%.9f,nan,%d\n", i, due[i], sent[i], status[i]);
    }
    fclose(out);
    printf("%ld sends, %.2f%% more than 1 ms late\n", count, 100.0 * (double)late / (double)count);
    return 0;
}
