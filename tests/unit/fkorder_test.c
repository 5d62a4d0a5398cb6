/* Unit tests for replica/fkorder.c: the initial sync's table order by foreign keys. */
#include "replica/fkorder.h"
#include "tests/unit/unit.h"

/* 0 lines -> 2 orders; 1 ledger alone; 3 emp -> emp (deferrable); 4 x <-> 5 y, one key not
 * deferrable: parents first, independent tables in their given order, cycles grouped. */
UNIT_TEST(fk_order_puts_parents_first_and_groups_cycles)
{
	static const struct fk_edge e[] = { { 0, 2, 0 }, { 3, 3, 1 }, { 4, 5, 1 }, { 5, 4, 0 },
	                                    { 7, 1, 0 } };      /* out of range: ignored */
	static const int want[] = { 2, 0, 1, 3, 4, 5 };
	int order[6];
	struct fk_group g[6];
	int n = fk_order(6, e, 5, order, g);

	CHECK(n == 5);
	for (int i = 0; i < 6; i++)
		CHECK(order[i] == want[i]);
	if (n == 5) {
		CHECK(g[0].first == 0 && g[0].n == 1 && !g[0].cyclic);
		CHECK(g[1].first == 1 && g[1].n == 1 && !g[1].cyclic);
		CHECK(g[2].first == 2 && g[2].n == 1 && !g[2].cyclic);
		CHECK(g[3].first == 3 && g[3].n == 1 && g[3].cyclic && g[3].deferrable);
		CHECK(g[4].first == 4 && g[4].n == 2 && g[4].cyclic && !g[4].deferrable);
	}
}

/* A chain given children first comes out parents first. */
UNIT_TEST(fk_order_reverses_a_chain)
{
	static const struct fk_edge e[] = { { 0, 1, 0 }, { 1, 2, 1 } };
	int order[3];
	struct fk_group g[3];

	CHECK(fk_order(3, e, 2, order, g) == 3);
	CHECK(order[0] == 2 && order[1] == 1 && order[2] == 0);
	CHECK(!g[0].cyclic && !g[1].cyclic && !g[2].cyclic);
}
