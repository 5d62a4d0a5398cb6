/* httpc: blocking HTTP client on libcurl, one easy handle per thread, kept between requests
 * so the thread's connection to a peer is reused (handles are never shared between threads,
 * so any thread may call after httpc_global_init). Redirects are not followed, only
 * http/https are allowed, and error texts come from curl (they name host and port, never
 * headers or bodies, so no secret can end up in them). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "common/buf.h"
#include "common/httpc.h"

struct httpc_sink {
	struct buf body;
	int    fd;        /* >= 0 when streaming into a file */
	size_t max, total;
	int    too_big, write_failed;
};

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;
static pthread_key_t httpc_key;

static void httpc_handle_free(void *h)
{
	curl_easy_cleanup(h);
}

static void httpc_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_key_create(&httpc_key, httpc_handle_free);
}

/* This thread's easy handle, without options (each request resets it when done: a reset
 * keeps the connections); freed when the thread ends. A new handle per request meant a new
 * TCP connection per page: on the primary a new thread and memory pool each time (~1 ms of
 * its CPU a page at the head of a busy log). NULL when out of memory. */
static CURL *httpc_handle(void)
{
	CURL *h = pthread_getspecific(httpc_key);

	if (h)
		return h;
	h = curl_easy_init();
	if (h && pthread_setspecific(httpc_key, h) != 0) {
		curl_easy_cleanup(h);
		h = NULL;
	}
	return h;
}

void httpc_global_init(void)
{
	pthread_once(&httpc_once, httpc_init_once);
}

static size_t httpc_write(char *data, size_t size, size_t nmemb, void *cls)
{
	struct httpc_sink *s = cls;
	size_t n = size * nmemb;

	if (n > s->max - s->total) {
		s->too_big = 1;
		return 0;  /* aborts the transfer */
	}
	s->total += n;
	if (s->fd < 0) {
		buf_append(&s->body, data, n);
		return n;
	}
	for (size_t off = 0; off < n;) {
		ssize_t w = write(s->fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->write_failed = errno ? errno : EIO;
			return 0;
		}
		off += (size_t)w;
	}
	return n;
}

/* libcurl calls this at least once a second, also while waiting for a reply. */
static int httpc_progress(void *cls, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
	const atomic_int *cancel = cls;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return *cancel ? 1 : 0;
}

int httpc_request(const char *method, const char *url, const char *const *headers,
                  const char *body, size_t body_len, const struct httpc_opts *opts,
                  struct httpc_resp *out)
{
	struct httpc_sink sink = { .fd = -1 };
	struct curl_slist *hl = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = NULL;
	CURLcode cc;
	int rc = -1;

	memset(out, 0, sizeof *out);
	httpc_global_init();
	sink.max = opts && opts->max_body ? opts->max_body : (size_t)64 * 1024 * 1024;
	if (opts && opts->write_to_path) {
		sink.fd = open(opts->write_to_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (sink.fd < 0) {
			snprintf(out->err, sizeof out->err, "cannot create %s: %s", opts->write_to_path,
			         strerror(errno));
			goto out;
		}
	}
	if (!(h = httpc_handle())) {
		snprintf(out->err, sizeof out->err, "cannot create HTTP client handle");
		goto out;
	}
	for (size_t i = 0; headers && headers[i]; i++) {
		struct curl_slist *n = curl_slist_append(hl, headers[i]);
		if (!n)
			goto oom;
		hl = n;
	}
	/* No "Expect: 100-continue" round trip before bodies. */
	if (!(hl = curl_slist_append(hl, "Expect:")))
		goto oom;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, opts && opts->timeout_ms ? opts->timeout_ms : 30000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : 5000L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)sink.max);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, httpc_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	if (opts && opts->cancel) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, httpc_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)opts->cancel);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	if (!method || !strcmp(method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	cc = curl_easy_perform(h);
	if (sink.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(out->err, sizeof out->err, "response body larger than %zu bytes", sink.max);
		goto out;
	}
	if (sink.write_failed) {
		snprintf(out->err, sizeof out->err, "writing %s: %s", opts->write_to_path,
		         strerror(sink.write_failed));
		goto out;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(out->err, sizeof out->err, "cancelled");
		goto out;
	}
	if (cc != CURLE_OK) {
		snprintf(out->err, sizeof out->err, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	{
		curl_off_t ra = 0;     /* 0 when absent (an HTTP date counts from now) */
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			out->retry_after = ra > 86400 ? 86400 : (long)ra;
	}
	if (sink.fd >= 0 && close(sink.fd) < 0) {
		sink.fd = -1;
		snprintf(out->err, sizeof out->err, "writing %s: %s", opts->write_to_path,
		         strerror(errno));
		goto out;
	}
	sink.fd = -1;
	out->len = sink.body.len;
	out->body = buf_steal(&sink.body);
	rc = 0;
	goto out;
oom:
	snprintf(out->err, sizeof out->err, "out of memory");
out:
	if (sink.fd >= 0)
		close(sink.fd);
	if (rc < 0) {
		out->status = 0;
		if (opts && opts->write_to_path)
			unlink(opts->write_to_path);  /* never leave a partial file behind */
	}
	if (h)     /* the handle stays this thread's: nothing may point at this call's data */
		curl_easy_reset(h);
	buf_free(&sink.body);
	curl_slist_free_all(hl);
	return rc;
}

void httpc_resp_free(struct httpc_resp *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

char *httpc_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct buf b = { 0 };

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			buf_append(&b, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			buf_append(&b, e, 3);
		}
	}
	return buf_steal(&b);
}
