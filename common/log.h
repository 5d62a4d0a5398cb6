/* log: one line per event on stderr, text or JSON (set up by command_dispatch from
 * --log-format / TDGL_LOG_FORMAT and --log-level / TDGL_LOG_LEVEL). Thread-safe. Never pass
 * secrets. */
#ifndef TDGL_LOG_H
#define TDGL_LOG_H
#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* prog names the process in every line; json selects the JSON format. */
void log_init(const char *prog, int json);
/* Sets the lowest level written (default LOG_INFO). */
void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* log_msg with a va_list (for adapters such as libmicrohttpd's error logger). */
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* A log site that writes at most one line per LOG_LIMIT_INTERVAL_S: lines from traffic a
 * client controls (malformed requests, refused notifies) must not let it fill the disk. The
 * first line is written; later ones within the interval are only counted, and the next line
 * written says how many were held back. */
#define LOG_LIMIT_INTERVAL_S 60
struct log_limit {
	long long next_ms;   /* monotonic ms before which lines are only counted */
	long held;           /* lines held back since the last one written */
};
#define LOG_LIMIT_INIT { 0, 0 }
void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
