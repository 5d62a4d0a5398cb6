/* console: see console.h. The files are NUL-terminated byte arrays made by tools/embed.sh
 * (build/console/<file>.c, symbol console_<file with '.' as '_'>). */
#include <string.h>
#include "common/console.h"

extern const char console_app_css[], console_common_js[], console_replica_html[],
	console_replica_js[], console_primary_html[], console_primary_js[];

struct console_file {
	const char *path;
	const char *type;
	const char *data;
	unsigned    roles;   /* bit per enum console_role */
};

#define CONSOLE_BOTH ((1u << CONSOLE_REPLICA) | (1u << CONSOLE_PRIMARY))
#define CONSOLE_HTML "text/html; charset=utf-8"
#define CONSOLE_JS   "text/javascript; charset=utf-8"
#define CONSOLE_CSS  "text/css; charset=utf-8"

static const struct console_file console_files[] = {
	{ "/", CONSOLE_HTML, console_replica_html, 1u << CONSOLE_REPLICA },
	{ "/", CONSOLE_HTML, console_primary_html, 1u << CONSOLE_PRIMARY },
	{ "/console/app.css", CONSOLE_CSS, console_app_css, CONSOLE_BOTH },
	{ "/console/common.js", CONSOLE_JS, console_common_js, CONSOLE_BOTH },
	{ "/console/replica.js", CONSOLE_JS, console_replica_js, 1u << CONSOLE_REPLICA },
	{ "/console/primary.js", CONSOLE_JS, console_primary_js, 1u << CONSOLE_PRIMARY },
};

/* No inline script or style, no plugins, nothing from another origin, no framing, forms
 * post nowhere (the console talks to the API with fetch only). */
static const char console_csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void console_security_headers(struct http_req *req)
{
	http_add_header(req, "Content-Security-Policy", console_csp);
	http_add_header(req, "X-Frame-Options", "DENY");
	http_add_header(req, "Referrer-Policy", "no-referrer");
	http_add_header(req, "Cache-Control", "no-cache");
}

int console_handle(struct http_req *req, enum console_role role)
{
	const char *path = http_path(req), *m = http_method(req);
	const struct console_file *f = NULL;

	for (size_t i = 0; i < sizeof console_files / sizeof *console_files; i++)
		if (!strcmp(console_files[i].path, path) && (console_files[i].roles & (1u << role))) {
			f = &console_files[i];
			break;
		}
	if (!f)
		return 0;
	console_security_headers(req);
	if (strcmp(m, "GET") && strcmp(m, "HEAD")) {
		http_add_header(req, "Allow", "GET, HEAD");
		http_reply_error(req, 405, "method not allowed");
	} else {
		http_reply_data(req, 200, f->type, f->data, strlen(f->data));
	}
	return 1;
}
