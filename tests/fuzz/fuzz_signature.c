/* fuzz_signature: the push signature contract between the primary (push_sign) and the
 * replica (notify_signature_ok, notify_check_time), plus crypto_str_equal. Input is split
 * into secret, timestamp, presented signature and body at the first three '\n' bytes.
 * Properties: the primary's signature always verifies; any other presented signature
 * verifies only if it is byte-identical; str_equal agrees with strcmp. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/crypto.h"
#include "primary/push.h"
#include "replica/notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *part[4] = { 0 }, sig[72], err[128];
	int n = 1;

	memcpy(buf, data, size);
	buf[size] = '\0';
	part[0] = buf;
	for (char *p = buf; n < 4 && (p = strchr(p, '\n')); n++) {
		*p++ = '\0';
		part[n] = p;
	}
	for (int i = n; i < 4; i++)
		part[i] = buf + size;   /* "" */
	if ((crypto_str_equal(part[0], part[2]) != 0) != (strcmp(part[0], part[2]) == 0))
		abort();
	if ((crypto_str_equal(part[1], part[1]) == 0))
		abort();
	/* the body is everything after the third '\n' (may hold NUL bytes) */
	{
		const char *body = part[3];
		size_t blen = (size_t)(buf + size - part[3]);
		push_sign(part[0], part[1], body, sig);
		/* push_sign signs a C string: only compare when the body has no NUL */
		if (strlen(body) == blen) {
			if (!notify_signature_ok(part[0], part[1], sig, body, blen))
				abort();
			if (notify_signature_ok(part[0], part[1], part[2], body, blen) !=
			    (strcmp(part[2], sig) == 0))
				abort();
		} else {
			(void)notify_signature_ok(part[0], part[1], part[2], body, blen);
		}
	}
	if (notify_check_time(part[1], 1700000000L, err, sizeof err) == 0) {
		long ts = strtol(part[1], NULL, 10);
		if (ts < 1700000000L - NOTIFY_WINDOW_S || ts > 1700000000L + NOTIFY_WINDOW_S)
			abort();
	}
	free(buf);
	return 0;
}
