/* addr: listen addresses. "HOST:PORT", ":PORT" (every IPv4 address), "[V6]:PORT"; HOST may
 * be a name (resolved once, first answer wins). Port 0 asks the kernel for a free port. */
#ifndef TDGL_ADDR_H
#define TDGL_ADDR_H
#include <stddef.h>
#include <sys/socket.h>

/* Fills *ss; returns 0, or -1 with a message in err. */
int addr_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen);
/* A listening TCP socket bound to ss (SO_REUSEADDR; "[::]" also takes IPv4), or -1 with
 * "cannot listen on <name>: <reason>" in err. The caller owns the descriptor. */
int addr_listen(const struct sockaddr_storage *ss, const char *name, char *err,
                size_t errlen);

#endif
