/* addr: see addr.h. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/addr.h"

int addr_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[256];
	const char *colon, *port, *h = listen;
	size_t hlen;
	struct addrinfo hints = { 0 }, *ai = NULL;
	long p;
	char *end;
	int rc = -1, e;

	if (!listen || !(colon = strrchr(listen, ':'))) {
		snprintf(err, errlen, "listen address \"%s\" is not HOST:PORT", listen ? listen : "");
		goto out;
	}
	port = colon + 1;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535 || hlen >= sizeof host) {
		snprintf(err, errlen, "listen address \"%s\": bad port or host", listen);
		goto out;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	e = getaddrinfo(hlen && strcmp(host, "*") ? host : "0.0.0.0", port, &hints, &ai);
	if (e || !ai) {
		snprintf(err, errlen, "listen address \"%s\": %s", listen, gai_strerror(e));
		goto out;
	}
	memset(ss, 0, sizeof *ss);
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	rc = 0;
out:
	if (ai)
		freeaddrinfo(ai);
	return rc;
}

int addr_listen(const struct sockaddr_storage *ss, const char *name, char *err,
                size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                          : sizeof(struct sockaddr_in);

	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (ss->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, SOMAXCONN) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", name, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}
