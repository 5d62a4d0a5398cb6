/* result: mapping the domain error vocabulary to the HTTP and CLI edges. */
#include "result.h"

unsigned result_http_status(enum result r)
{
	switch (r) {
	case RESULT_OK:          return 200;
	case RESULT_INVALID:     return 400;
	case RESULT_NOT_FOUND:   return 404;
	case RESULT_CONFLICT:    return 409;
	case RESULT_TOO_LARGE:   return 413;
	case RESULT_BUSY:        return 503;
	case RESULT_UNAVAILABLE: return 503;
	case RESULT_NO_MEMORY:   return 500;
	case RESULT_INTERNAL:    return 500;
	case RESULT_FORBIDDEN:   return 403;
	case RESULT_UNAUTHORIZED: return 401;
	}
	return 500;
}

int result_exit_code(enum result r)
{
	switch (r) {
	case RESULT_OK:
		return 0;
	case RESULT_INVALID:
	case RESULT_TOO_LARGE:
		return 2;
	case RESULT_NOT_FOUND:
	case RESULT_CONFLICT:
	case RESULT_FORBIDDEN:
	case RESULT_UNAUTHORIZED:
	case RESULT_BUSY:
	case RESULT_UNAVAILABLE:
	case RESULT_NO_MEMORY:
	case RESULT_INTERNAL:
		return 1;
	}
	return 1;
}

const char *result_name(enum result r)
{
	switch (r) {
	case RESULT_OK:          return "ok";
	case RESULT_INVALID:     return "invalid";
	case RESULT_NOT_FOUND:   return "not found";
	case RESULT_CONFLICT:    return "conflict";
	case RESULT_TOO_LARGE:   return "too large";
	case RESULT_BUSY:        return "busy";
	case RESULT_UNAVAILABLE: return "unavailable";
	case RESULT_NO_MEMORY:   return "out of memory";
	case RESULT_INTERNAL:    return "internal error";
	case RESULT_FORBIDDEN:   return "forbidden";
	case RESULT_UNAUTHORIZED: return "unauthorized";
	}
	return "internal error";
}
