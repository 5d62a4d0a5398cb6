/* Unit tests for replica/notify.c (push signature, timestamp window, replay cache) and
 * replica/files.c's path check (attachment paths never leave the files directory).
 * The unit-test binary links only common/, so the replica modules are included here.
 * The expected HMAC was computed independently with Python's hmac module. */
#include <stdio.h>
#include <string.h>

#include "replica/notify.c"
#include "replica/upstream.c"
#include "replica/files.c"
#include "tests/unit/unit.h"

#define NT_BODY "{\"event\":\"changes\",\"head\":7}"
#define NT_SIG "sha256=f104fcd19eb237f37a7730f3d0b08c3c73e62cee3ff097d7c1c4e35701013957"

UNIT_TEST(notify_signature_matches_an_independent_hmac)
{
	CHECK(notify_signature_ok("push-secret", "1700000000", NT_SIG, NT_BODY, strlen(NT_BODY)));
}

UNIT_TEST(notify_signature_refuses_any_change)
{
	char sig[] = NT_SIG;

	CHECK(!notify_signature_ok("push-secreT", "1700000000", NT_SIG, NT_BODY, strlen(NT_BODY)));
	CHECK(!notify_signature_ok("push-secret", "1700000001", NT_SIG, NT_BODY, strlen(NT_BODY)));
	CHECK(!notify_signature_ok("push-secret", "1700000000", NT_SIG, NT_BODY,
	                           strlen(NT_BODY) - 1));
	sig[strlen(sig) - 1] = '8';
	CHECK(!notify_signature_ok("push-secret", "1700000000", sig, NT_BODY, strlen(NT_BODY)));
	CHECK(!notify_signature_ok("push-secret", "1700000000", NT_SIG + 7, NT_BODY,
	                           strlen(NT_BODY)));
	CHECK(!notify_signature_ok("push-secret", "1700000000", "", NT_BODY, strlen(NT_BODY)));
	CHECK(!notify_signature_ok(NULL, "1700000000", NT_SIG, NT_BODY, strlen(NT_BODY)));
	CHECK(!notify_signature_ok("push-secret", NULL, NT_SIG, NT_BODY, strlen(NT_BODY)));
}

UNIT_TEST(notify_timestamp_window_is_300_seconds_both_ways)
{
	char err[128];
	long now = 1700000000;

	CHECK(notify_check_time("1700000000", now, err, sizeof err) == 0);
	CHECK(notify_check_time("1699999700", now, err, sizeof err) == 0);
	CHECK(notify_check_time("1700000300", now, err, sizeof err) == 0);
	CHECK(notify_check_time("1699999699", now, err, sizeof err) < 0);
	CHECK(notify_check_time("1700000301", now, err, sizeof err) < 0);
	CHECK(notify_check_time("", now, err, sizeof err) < 0);
	CHECK(notify_check_time(NULL, now, err, sizeof err) < 0);
	CHECK(notify_check_time("17e8", now, err, sizeof err) < 0);
	CHECK(notify_check_time("-5", now, err, sizeof err) < 0);
	CHECK(notify_check_time("99999999999999999999999", now, err, sizeof err) < 0);
}

UNIT_TEST(notify_replayed_signature_is_refused)
{
	long now = 1700000000;

	CHECK(notify_remember("sha256=unit-a", now) == 1);
	CHECK(notify_remember("sha256=unit-a", now + 1) == 0);
	CHECK(notify_remember("sha256=unit-b", now + 1) == 1);
	CHECK(notify_remember("sha256=unit-a", now + 299) == 0);
}

UNIT_TEST(notify_replay_cache_survives_a_flood)
{
	long now = 1800000000;
	char sig[80];

	CHECK(notify_remember("sha256=unit-first", now) == 1);
	for (int i = 0; i < 20000; i++) {
		snprintf(sig, sizeof sig, "sha256=flood-%d", i);
		CHECK(notify_remember(sig, now + 1) == 1);
	}
	/* the most recent ones are still remembered */
	CHECK(notify_remember("sha256=flood-19999", now + 2) == 0);
}

UNIT_TEST(files_path_ok_accepts_relative_file_urls)
{
	CHECK(files_path_ok("/files/a.pdf"));
	CHECK(files_path_ok("/files/inv/2024/a b.pdf"));
	CHECK(files_path_ok("/files/.hidden"));
	CHECK(files_path_ok("/files/a..b"));
}

UNIT_TEST(files_path_ok_refuses_escapes)
{
	CHECK(!files_path_ok(NULL));
	CHECK(!files_path_ok(""));
	CHECK(!files_path_ok("/files/"));
	CHECK(!files_path_ok("/files/../etc/passwd"));
	CHECK(!files_path_ok("/files/a/../../b"));
	CHECK(!files_path_ok("/files/a/.."));
	CHECK(!files_path_ok("/files/./a"));
	CHECK(!files_path_ok("/files//etc/passwd"));
	CHECK(!files_path_ok("/files/a/"));
	CHECK(!files_path_ok("/files/a\\..\\b"));
	CHECK(!files_path_ok("/files/a\nb"));
	CHECK(!files_path_ok("/etc/passwd"));
	CHECK(!files_path_ok("files/a"));
	CHECK(!files_path_ok("https://x/files/a"));
	CHECK(!files_path_ok("/private/files/a"));
}
