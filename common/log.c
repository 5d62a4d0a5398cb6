/* log: one line per event on stderr, text or JSON. Each line is formatted on the stack and
 * written with a single write() under a mutex, so lines from threads never interleave and
 * logging never allocates. Control characters in messages are escaped in both formats, so
 * a message can never forge a second log line. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"

#define LOG_MSG_MAX  4096
#define LOG_LINE_MAX (LOG_MSG_MAX * 2 + 256)

static char log_prog[64] = "tdgl";
static int log_json;
static int log_level = LOG_INFO;   /* read and written with __atomic builtins */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void log_init(const char *prog, int json)
{
	snprintf(log_prog, sizeof log_prog, "%s", prog ? prog : "tdgl");
	log_json = json;
}

void log_set_level(enum log_level level)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

/* Appends s to out[*n] (capacity cap, keeping room for "\"}\n"), escaping control
 * characters, and quotes and backslashes when json is set. Truncates silently. */
static void log_escape(char *out, size_t *n, size_t cap, const char *s, int json)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[7];
		size_t elen = 0;

		if (ch == '\n') {
			memcpy(esc, "\\n", 2);
			elen = 2;
		} else if (ch == '\r') {
			memcpy(esc, "\\r", 2);
			elen = 2;
		} else if (ch == '\t') {
			memcpy(esc, json ? "\\t" : "\t", json ? 2 : 1);
			elen = json ? 2 : 1;
		} else if (ch < 0x20 || ch == 0x7f) {
			esc[0] = '\\'; esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
			esc[4] = hex[ch >> 4]; esc[5] = hex[ch & 15];
			elen = 6;
		} else if (ch >= 0x80) {
			/* Copy a whole valid UTF-8 sequence, or replace a stray byte with '?'. */
			size_t len = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;

			if (strnlen(s, len) == len && json_utf8_valid(s, len)) {
				memcpy(esc, s, len);
				elen = len;
				s += len - 1;
			} else {
				esc[0] = '?';
				elen = 1;
			}
		} else if (json && (ch == '"' || ch == '\\')) {
			esc[0] = '\\'; esc[1] = (char)ch;
			elen = 2;
		} else {
			esc[0] = (char)ch;
			elen = 1;
		}
		if (*n + elen + 4 > cap)
			return;
		memcpy(out + *n, esc, elen);
		*n += elen;
	}
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX], line[LOG_LINE_MAX], ts[CLOCK_ISO_MAX];
	size_t n = 0;
	int lvl = (int)level;

	if (lvl < __atomic_load_n(&log_level, __ATOMIC_RELAXED))
		return;
	if (lvl < LOG_DEBUG || lvl > LOG_ERROR)
		lvl = LOG_ERROR;
	vsnprintf(msg, sizeof msg, fmt, ap);
	clock_iso_utc_now_ms(ts, sizeof ts);
	if (log_json) {
		n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"prog\":\"", ts);
		log_escape(line, &n, sizeof line, log_prog, 1);
		n += (size_t)snprintf(line + n, sizeof line - n, "\",\"level\":\"%s\",\"msg\":\"",
		                      log_names[lvl]);
		log_escape(line, &n, sizeof line, msg, 1);
		memcpy(line + n, "\"}\n", 3);
		n += 3;
	} else {
		n = (size_t)snprintf(line, sizeof line, "%s %s %s ", ts, log_prog, log_names[lvl]);
		log_escape(line, &n, sizeof line, msg, 0);
		line[n++] = '\n';
	}
	pthread_mutex_lock(&log_lock);
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, line + off, n - off);
		if (w <= 0)
			break;  /* nowhere to report a failing stderr */
		off += (size_t)w;
	}
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	char msg[LOG_MSG_MAX];
	long long now = clock_ms();
	long held = -1;
	va_list ap;

	pthread_mutex_lock(&mu);
	if (now >= l->next_ms) {
		held = l->held;
		l->held = 0;
		l->next_ms = now + LOG_LIMIT_INTERVAL_S * 1000LL;
	} else {
		l->held++;
	}
	pthread_mutex_unlock(&mu);
	if (held < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (held > 0)
		log_msg(level, "%s (and %ld more like it since the last such line, not logged)", msg,
		        held);
	else
		log_msg(level, "%s", msg);
}
