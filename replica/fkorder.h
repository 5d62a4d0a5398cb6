/* fkorder: the order an initial sync copies a source's tables in: every table after the
 * tables its foreign keys reference (parents first), tables that reference each other
 * (a cycle, or a table referencing itself) together as one group. Needed when the replica's
 * foreign keys are checked during the copy (no replica role, tdgl_replica.replica_role): a child
 * copied before its parent is refused. */
#ifndef TDGL_REPLICA_FKORDER_H
#define TDGL_REPLICA_FKORDER_H

/* A foreign key of table child (an index into the tables) referencing table parent. */
struct fk_edge {
	int child, parent;
	int deferrable;
};

/* One group of the order: tables order[first .. first + n). cyclic: the tables reference
 * each other (several tables, or one referencing itself), so no order of them avoids a
 * key that points forward; deferrable: every key between them is DEFERRABLE, so they can
 * go in one transaction with the checks deferred to its end. */
struct fk_group {
	int first, n;
	int cyclic, deferrable;
};

/* Orders tables 0..ntables-1 by the m keys of edges (indexes out of range are ignored).
 * Independent tables keep their given order. Fills order[ntables] and groups[ntables]
 * (a table per group at most) and returns the number of groups, parents' groups first. */
int fk_order(int ntables, const struct fk_edge *edges, int m, int *order,
             struct fk_group *groups);

#endif
