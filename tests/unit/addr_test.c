/* Unit tests for common/addr.c. */
#include <arpa/inet.h>
#include <string.h>

#include "common/addr.h"
#include "tests/unit/unit.h"

UNIT_TEST(addr_parse_listen_table)
{
	static const struct { const char *in; int rc, family, port; const char *ip; } cases[] = {
		{ "127.0.0.1:8080", 0, AF_INET, 8080, "127.0.0.1" },
		{ "0.0.0.0:80", 0, AF_INET, 80, "0.0.0.0" },
		{ ":8081", 0, AF_INET, 8081, "0.0.0.0" },
		{ "*:0", 0, AF_INET, 0, "0.0.0.0" },
		{ "[::1]:9000", 0, AF_INET6, 9000, "::1" },
		{ "[::]:9000", 0, AF_INET6, 9000, "::" },
		{ "localhost:1", 0, 0, 1, NULL },
		{ "8080", -1, 0, 0, NULL }, { "", -1, 0, 0, NULL }, { "h:", -1, 0, 0, NULL },
		{ "h:65536", -1, 0, 0, NULL }, { "h:-1", -1, 0, 0, NULL }, { "h:80x", -1, 0, 0, NULL },
		{ "no.such.host.invalid:80", -1, 0, 0, NULL },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct sockaddr_storage ss;
		char err[256] = "", ip[64] = "";
		int rc = addr_parse_listen(cases[i].in, &ss, err, sizeof err), port;

		if (rc != cases[i].rc)
			fprintf(stderr, "  \"%s\": rc %d %s\n", cases[i].in, rc, err);
		CHECK(rc == cases[i].rc);
		if (rc < 0) {
			CHECK(err[0] != '\0');
			continue;
		}
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
			port = ntohs(a->sin_port);
		} else {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
			port = ntohs(a->sin6_port);
		}
		CHECK(port == cases[i].port);
		if (cases[i].family)
			CHECK(ss.ss_family == cases[i].family);
		if (cases[i].ip)
			CHECK_STR(ip, cases[i].ip);
	}
	CHECK(addr_parse_listen(NULL, NULL, (char[8]){ 0 }, 8) == -1);
}
