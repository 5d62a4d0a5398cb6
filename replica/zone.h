/* zone: IANA time zones read straight from the TZif files under /usr/share/zoneinfo
 * (RFC 8536: the 64-bit transition table plus the POSIX TZ rule in the footer for instants
 * after the last transition). Parsing the files ourselves keeps time-zone math thread-safe:
 * no setenv("TZ")/tzset/localtime_r at runtime.
 * Zones are loaded once and cached process-wide; returned pointers are never freed and stay
 * valid until exit. All functions are thread-safe. */
#ifndef TDGL_REPLICA_ZONE_H
#define TDGL_REPLICA_ZONE_H
#include <stddef.h>
#include <time.h>

#define ZONE_DIR      "/usr/share/zoneinfo"
#define ZONE_NAME_MAX 64

struct zone;

/* The zone called name ("America/New_York", "UTC"; NULL or "" mean UTC). The name may not
 * hold "..", start with '/', or use characters outside [A-Za-z0-9_+-/]; the file must be a
 * regular TZif file. Returns NULL with a message in err. */
const struct zone *zone_get(const char *name, char *err, size_t errlen);
const char *zone_name(const struct zone *z);
/* UTC offset in seconds east of Greenwich in force at instant t. */
long zone_offset(const struct zone *z, time_t t);

#endif
