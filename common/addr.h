/* addr: listen addresses. "HOST:PORT", ":PORT" (every IPv4 address), "[V6]:PORT"; HOST may
 * be a name (resolved once, first answer wins). Port 0 asks the kernel for a free port. */
#ifndef TDGL_ADDR_H
#define TDGL_ADDR_H
#include <stddef.h>
#include <sys/socket.h>

/* Fills *ss; returns 0, or -1 with a message in err. */
int addr_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen);
/* After a server failed to start on ss: tries to bind it to put the reason (e.g. "Address
 * already in use") into err. */
void addr_explain_bind(const struct sockaddr_storage *ss, const char *listen, char *err,
                       size_t errlen);

#endif
