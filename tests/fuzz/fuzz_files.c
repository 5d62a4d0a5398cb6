/* fuzz_files: /api/files/<path> (after URL decoding) must never open anything outside the
 * files directory. A sandbox holds a root with files, a directory, a symlink pointing out and
 * a secret file beside the root; any descriptor files_open returns must be of a regular file
 * whose real path is inside the root. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "primary/files.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_root[PATH_MAX];
static size_t fuzz_rootlen;

static void fuzz_put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
}

static void fuzz_setup(void)
{
	char base[] = "/tmp/tdgl-fuzz-files-XXXXXX", p[PATH_MAX + 64];

	if (!mkdtemp(base))
		abort();
	snprintf(p, sizeof p, "%s/secret", base);
	fuzz_put(p, "outside");
	snprintf(p, sizeof p, "%s/root", base);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/root/a.txt", base);
	fuzz_put(p, "a");
	snprintf(p, sizeof p, "%s/root/sub", base);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/root/sub/b.pdf", base);
	fuzz_put(p, "b");
	snprintf(p, sizeof p, "%s/root/out", base);
	if (symlink("../secret", p) < 0)
		abort();
	snprintf(p, sizeof p, "%s/root/sub/up", base);
	if (symlink("..", p) < 0)
		abort();
	snprintf(p, sizeof p, "%s/root/abs", base);
	if (symlink("/etc/passwd", p) < 0)
		abort();
	snprintf(p, sizeof p, "%s/root", base);
	if (!realpath(p, fuzz_root))
		abort();
	fuzz_rootlen = strlen(fuzz_root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *rel = malloc(size + 1), err[256], link[64], real[PATH_MAX];
	size_t fsize = 0;
	enum result r;
	int fd;

	if (!fuzz_rootlen)
		fuzz_setup();
	memcpy(rel, data, size);
	rel[size] = '\0';
	r = files_open(fuzz_root, rel, &fd, &fsize, err, sizeof err);
	if (r == RESULT_OK) {
		ssize_t n;
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		n = readlink(link, real, sizeof real - 1);
		if (n < 0)
			abort();
		real[n] = '\0';
		if (strncmp(real, fuzz_root, fuzz_rootlen) != 0 || real[fuzz_rootlen] != '/')
			abort();   /* escaped the root */
		close(fd);
	} else if (fd >= 0 || result_http_status(r) < 400 || result_http_status(r) > 499) {
		abort();       /* bad paths are the client's fault */
	}
	(void)files_content_type(rel);
	free(rel);
	return 0;
}
