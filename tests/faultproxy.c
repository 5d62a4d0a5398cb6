/* faultproxy: a TCP proxy for fault tests (tc netem is not available here). It forwards
 * 127.0.0.1:LISTEN to HOST:TARGET and misbehaves on command. Commands, one per line, on stdin
 * and on the optional control port (each answered "ok" or "error: ..."):
 *   pass                    forward everything (the default)
 *   delay MS                hold every chunk MS milliseconds before forwarding it
 *   stall                   forward nothing in either direction (connections stay open)
 *   stall-after BYTES       forward BYTES of each response (server to client), then stall
 *   cut-after BYTES         forward BYTES of each response, then reset both sides (RST)
 *   truncate-response BYTES forward BYTES of each response, then close both sides cleanly
 *   refuse                  close new connections at once
 *   drop                    reset every open connection now (the mode stays)
 *   stats                   "conns N open N down BYTES up BYTES"
 *   quit                    exit
 * Response limits count per connection, from its first byte. A mode change applies at once
 * to open connections too. On start it prints "ready LISTEN_PORT CONTROL_PORT" (a port 0
 * argument picks a free port). Usage: faultproxy LISTEN_PORT TARGET_PORT [CONTROL_PORT]
 * [TARGET_HOST]. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FP_MAX_CONNS 1024
#define FP_CHUNK 16384
#define FP_TICK_MS 20

enum fp_mode { FP_PASS, FP_DELAY, FP_STALL, FP_STALL_AFTER, FP_CUT_AFTER, FP_TRUNCATE, FP_REFUSE };

struct fp_conn {
	int client, server;
	int used;
};

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static enum fp_mode fp_mode = FP_PASS;
static long fp_arg;                       /* MS or BYTES of the mode */
static struct fp_conn fp_conns[FP_MAX_CONNS];
static long fp_total, fp_open, fp_down, fp_up;
static char fp_host[256] = "127.0.0.1";
static int fp_target;

static void fp_get_mode(enum fp_mode *m, long *arg)
{
	pthread_mutex_lock(&fp_lock);
	*m = fp_mode;
	*arg = fp_arg;
	pthread_mutex_unlock(&fp_lock);
}

static void fp_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int fp_listen(int port, int *bound)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t alen = sizeof a;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

static int fp_connect_target(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char port[16];
	int fd = -1;

	snprintf(port, sizeof port, "%d", fp_target);
	if (getaddrinfo(fp_host, port, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Closes with RST instead of FIN: the peer sees "connection reset". */
static void fp_reset(int fd)
{
	struct linger l = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

static int fp_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* How many response bytes may still go down under the current mode (-1: no limit). */
static long fp_down_room(enum fp_mode m, long arg, long sent)
{
	if (m == FP_STALL_AFTER || m == FP_CUT_AFTER || m == FP_TRUNCATE)
		return sent >= arg ? 0 : arg - sent;
	return -1;
}

static void *fp_pump(void *arg)
{
	struct fp_conn *c = arg;
	char *buf = malloc(FP_CHUNK);
	long down = 0;
	int rst = 0;

	if (!buf)
		goto out;
	for (;;) {
		struct pollfd p[2] = { { c->client, POLLIN, 0 }, { c->server, POLLIN, 0 } };
		enum fp_mode m;
		long marg, room;
		int r;

		fp_get_mode(&m, &marg);
		room = fp_down_room(m, marg, down);
		if (room == 0 && m == FP_CUT_AFTER) {
			rst = 1;
			goto out;
		}
		if (room == 0 && m == FP_TRUNCATE)
			goto out;
		if (m == FP_STALL || room == 0) {
			fp_sleep_ms(FP_TICK_MS);
			continue;
		}
		r = poll(p, 2, FP_TICK_MS);
		if (r < 0 && errno != EINTR)
			goto out;
		if (r <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			size_t want = FP_CHUNK;
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			fp_get_mode(&m, &marg);
			if (m == FP_STALL)
				break;
			room = fp_down_room(m, marg, down);
			if (i == 1 && room == 0)
				continue;
			if (i == 1 && room > 0 && (size_t)room < want)
				want = (size_t)room;
			n = recv(p[i].fd, buf, want, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				rst = n < 0;
				goto out;
			}
			if (m == FP_DELAY)
				fp_sleep_ms(marg);
			if (fp_write_all(i == 0 ? c->server : c->client, buf, (size_t)n) < 0) {
				rst = 1;
				goto out;
			}
			pthread_mutex_lock(&fp_lock);
			if (i == 1)
				fp_down += n;
			else
				fp_up += n;
			pthread_mutex_unlock(&fp_lock);
			if (i == 1)
				down += n;
		}
	}
out:
	if (rst) {
		fp_reset(c->client);
		fp_reset(c->server);
	}
	pthread_mutex_lock(&fp_lock);
	close(c->client);
	close(c->server);
	c->used = 0;
	fp_open--;
	pthread_mutex_unlock(&fp_lock);
	free(buf);
	return NULL;
}

static void *fp_accept_loop(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), sfd, one = 1;
		struct fp_conn *c = NULL;
		enum fp_mode m;
		long marg;
		pthread_t t;

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			return NULL;
		}
		fp_get_mode(&m, &marg);
		if (m == FP_REFUSE) {
			fp_reset(cfd);
			close(cfd);
			continue;
		}
		sfd = fp_connect_target();
		if (sfd < 0) {
			fp_reset(cfd);
			close(cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		pthread_mutex_lock(&fp_lock);
		for (int i = 0; i < FP_MAX_CONNS; i++)
			if (!fp_conns[i].used) {
				c = &fp_conns[i];
				c->used = 1;
				c->client = cfd;
				c->server = sfd;
				fp_total++;
				fp_open++;
				break;
			}
		pthread_mutex_unlock(&fp_lock);
		if (!c || pthread_create(&t, NULL, fp_pump, c) != 0) {
			if (c) {
				pthread_mutex_lock(&fp_lock);
				c->used = 0;
				fp_open--;
				pthread_mutex_unlock(&fp_lock);
			}
			close(cfd);
			close(sfd);
			continue;
		}
		pthread_detach(t);
	}
}

/* Runs one command line; writes the answer (one line) into out. Returns 1 on "quit". */
static int fp_command(char *line, char *out, size_t outlen)
{
	static const struct { const char *name; enum fp_mode mode; int has_arg; } cmds[] = {
		{ "pass", FP_PASS, 0 }, { "delay", FP_DELAY, 1 }, { "stall", FP_STALL, 0 },
		{ "stall-after", FP_STALL_AFTER, 1 }, { "cut-after", FP_CUT_AFTER, 1 },
		{ "truncate-response", FP_TRUNCATE, 1 }, { "refuse", FP_REFUSE, 0 },
	};
	char *word = strtok(line, " \t\r\n"), *argw = strtok(NULL, " \t\r\n"), *end = NULL;
	long v = 0;

	if (!word) {
		snprintf(out, outlen, "error: empty command");
		return 0;
	}
	if (!strcmp(word, "quit")) {
		snprintf(out, outlen, "ok");
		return 1;
	}
	if (!strcmp(word, "stats")) {
		pthread_mutex_lock(&fp_lock);
		snprintf(out, outlen, "conns %ld open %ld down %ld up %ld", fp_total, fp_open,
		         fp_down, fp_up);
		pthread_mutex_unlock(&fp_lock);
		return 0;
	}
	if (!strcmp(word, "drop")) {
		pthread_mutex_lock(&fp_lock);
		for (int i = 0; i < FP_MAX_CONNS; i++)
			if (fp_conns[i].used) {
				fp_reset(fp_conns[i].client);
				fp_reset(fp_conns[i].server);
				shutdown(fp_conns[i].client, SHUT_RDWR);
				shutdown(fp_conns[i].server, SHUT_RDWR);
			}
		pthread_mutex_unlock(&fp_lock);
		snprintf(out, outlen, "ok");
		return 0;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
		if (strcmp(word, cmds[i].name) != 0)
			continue;
		if (cmds[i].has_arg) {
			if (!argw || (v = strtol(argw, &end, 10)) < 0 || *end) {
				snprintf(out, outlen, "error: %s needs a number", word);
				return 0;
			}
		}
		pthread_mutex_lock(&fp_lock);
		fp_mode = cmds[i].mode;
		fp_arg = v;
		pthread_mutex_unlock(&fp_lock);
		snprintf(out, outlen, "ok");
		return 0;
	}
	snprintf(out, outlen, "error: unknown command %.64s", word);
	return 0;
}

static void *fp_control_client(void *arg)
{
	int fd = (int)(long)arg;
	FILE *f = fdopen(fd, "r+");
	char line[256], out[256];

	if (!f) {
		close(fd);
		return NULL;
	}
	while (fgets(line, sizeof line, f)) {
		int quit = fp_command(line, out, sizeof out);
		fprintf(f, "%s\n", out);
		fflush(f);
		if (quit)
			exit(0);
	}
	fclose(f);
	return NULL;
}

static void *fp_control_loop(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		if (pthread_create(&t, NULL, fp_control_client, (void *)(long)fd) != 0)
			close(fd);
		else
			pthread_detach(t);
	}
}

int main(int argc, char **argv)
{
	static int lfd, cfd = -1;
	int port = 0, cport = -1;
	char line[256], out[256];
	pthread_t t;

	if (argc < 3 || argc > 5 || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: faultproxy LISTEN_PORT TARGET_PORT [CONTROL_PORT] [TARGET_HOST]\n");
		return argc == 2 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	fp_target = atoi(argv[2]);
	if (argc >= 5)
		snprintf(fp_host, sizeof fp_host, "%s", argv[4]);
	lfd = fp_listen(atoi(argv[1]), &port);
	if (lfd < 0) {
		fprintf(stderr, "faultproxy: listen %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (argc >= 4) {
		cfd = fp_listen(atoi(argv[3]), &cport);
		if (cfd < 0) {
			fprintf(stderr, "faultproxy: control %s: %s\n", argv[3], strerror(errno));
			return 1;
		}
		pthread_create(&t, NULL, fp_control_loop, &cfd);
		pthread_detach(t);
	}
	pthread_create(&t, NULL, fp_accept_loop, &lfd);
	pthread_detach(t);
	printf("ready %d %d\n", port, cport);
	fflush(stdout);
	/* stdin commands; end of stdin keeps serving (control port or signals end it) */
	while (fgets(line, sizeof line, stdin)) {
		int quit = fp_command(line, out, sizeof out);
		printf("%s\n", out);
		fflush(stdout);
		if (quit)
			return 0;
	}
	for (;;)
		pause();
}
