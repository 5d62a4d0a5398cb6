/* limits: the sizes of a page of changes, which both servers must agree on. */
#ifndef TDGL_LIMITS_H
#define TDGL_LIMITS_H

/* Most changes GET /api/changes serves in one page (its `limit`). */
#define CHANGES_LIMIT_MAX 5000
/* A page also ends once the rows of its changes add up to this many bytes (after at least
 * one change): big rows do not make big pages, on either side. */
#define CHANGES_PAGE_BYTES (8 << 20)
/* A replica source's page size unless set: a page has a fixed cost on both sites (a
 * request, a commit, planning the apply statements), 2000 changes amortise it (catching
 * up ~20-30 % faster than 500: BENCHMARKS.md). */
#define CHANGES_BATCH_DEFAULT 2000

/* The two as text, for option tables and messages. */
#define LIMITS_TEXT_(n) #n
#define LIMITS_TEXT(n) LIMITS_TEXT_(n)

#endif
