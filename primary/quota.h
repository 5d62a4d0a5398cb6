/* quota: per-API-key caps on what one client may hold at once on this process: requests
 * being served (each may hold a database connection) and long-polls waiting. One replica
 * (or a stolen key) can then never take every connection slot or database connection from
 * the others. Thread-safe. */
#ifndef TDGL_PRIMARY_QUOTA_H
#define TDGL_PRIMARY_QUOTA_H

enum quota_kind { QUOTA_REQUEST, QUOTA_WAIT, QUOTA_KINDS };

struct quota;

/* max[k]: how many of kind k one key may hold (<= 0: no cap). */
struct quota *quota_new(const int max[QUOTA_KINDS]);
void quota_free(struct quota *q);
/* Takes one of key's slots of kind k: 0, or -1 when it holds its cap already. */
int quota_take(struct quota *q, const char *key, enum quota_kind k);
/* Gives back a slot quota_take gave. */
void quota_give(struct quota *q, const char *key, enum quota_kind k);

#endif
