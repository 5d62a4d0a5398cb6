/* fkorder: tables in foreign-key order (see fkorder.h). Tarjan's strongly connected
 * components over the edges child -> parent: a component is complete only after every
 * component it reaches (its parents), so they come out parents first. */
#include <stdlib.h>
#include "replica/fkorder.h"

struct fk_walk {
	int n, m, counter, sp, norder, ngroups;
	const struct fk_edge *e;
	int *index, *low, *onstack, *stack, *group_of;
	int *order;
	struct fk_group *groups;
};

static int fk_valid(const struct fk_walk *w, const struct fk_edge *e)
{
	return e->child >= 0 && e->child < w->n && e->parent >= 0 && e->parent < w->n;
}

static int fk_cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static void fk_visit(struct fk_walk *w, int v)
{
	w->index[v] = w->low[v] = w->counter++;
	w->stack[w->sp++] = v;
	w->onstack[v] = 1;
	for (int k = 0; k < w->m; k++) {
		int p = w->e[k].parent;

		if (w->e[k].child != v || !fk_valid(w, &w->e[k]))
			continue;
		if (w->index[p] < 0) {
			fk_visit(w, p);
			if (w->low[p] < w->low[v])
				w->low[v] = w->low[p];
		} else if (w->onstack[p] && w->index[p] < w->low[v]) {
			w->low[v] = w->index[p];
		}
	}
	if (w->low[v] == w->index[v]) {
		struct fk_group *g = &w->groups[w->ngroups];
		int start = w->sp;

		do
			start--;
		while (w->stack[start] != v);
		/* inside a group, the given order */
		qsort(w->stack + start, (size_t)(w->sp - start), sizeof *w->stack, fk_cmp_int);
		g->first = w->norder;
		g->n = w->sp - start;
		g->cyclic = g->n > 1;
		g->deferrable = 1;
		for (int i = start; i < w->sp; i++) {
			w->onstack[w->stack[i]] = 0;
			w->group_of[w->stack[i]] = w->ngroups;
			w->order[w->norder++] = w->stack[i];
		}
		w->sp = start;
		for (int k = 0; k < w->m; k++) {
			const struct fk_edge *e = &w->e[k];

			if (!fk_valid(w, e) || w->group_of[e->child] != w->ngroups ||
			    w->group_of[e->parent] != w->ngroups)
				continue;
			if (e->child == e->parent)
				g->cyclic = 1;
			if (!e->deferrable)
				g->deferrable = 0;
		}
		w->ngroups++;
	}
}

int fk_order(int ntables, const struct fk_edge *edges, int m, int *order,
             struct fk_group *groups)
{
	size_t n = (size_t)(ntables > 0 ? ntables : 1);
	struct fk_walk w = { .n = ntables, .m = m, .e = edges, .order = order, .groups = groups };

	w.index = malloc(n * sizeof *w.index);
	w.low = malloc(n * sizeof *w.low);
	w.onstack = calloc(n, sizeof *w.onstack);
	w.stack = malloc(n * sizeof *w.stack);
	w.group_of = malloc(n * sizeof *w.group_of);
	if (!w.index || !w.low || !w.onstack || !w.stack || !w.group_of)
		abort();
	for (int i = 0; i < ntables; i++) {
		w.index[i] = -1;
		w.group_of[i] = -1;
	}
	for (int i = 0; i < ntables; i++)
		if (w.index[i] < 0)
			fk_visit(&w, i);
	free(w.index);
	free(w.low);
	free(w.onstack);
	free(w.stack);
	free(w.group_of);
	return w.ngroups;
}
