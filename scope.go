package dag

// scope is one graph of a job: the job's own tasks (with their groups
// flattened in), or the tasks that one Expand returned. Scopes form a tree:
// the tasks of an Expand's scope run as that Expand task's sub-DAG.
//
// No task outside an Expand's scope can name one inside it (their names are
// not known when the job is validated), so a question between two scopes is
// a question between the tasks that stand for them in their lowest common
// scope: a task inside an Expand's scope sees what the Expand task sees,
// and a task that depends on the Expand task sees everything inside it.
type scope struct {
	g      *graph
	parent *scope // nil for the job's own scope
	owner  int32  // the Expand task's node in parent that made this scope
	depth  int32  // 0 for the job's own scope
	base   int32  // the job-wide number of the scope's node 0
	// rankBase is the critical path after the scope: the owner's rank,
	// less the owner itself, so that a scope's tasks are ranked among the
	// job's.
	rankBase int32
}

// lift brings two nodes of two scopes to their lowest common scope: each
// becomes the node that stands for it there.
func lift(as *scope, a int32, bs *scope, b int32) (*scope, int32, int32) {
	for as != bs {
		if as.depth >= bs.depth {
			a, as = as.owner, as.parent
		} else {
			b, bs = bs.owner, bs.parent
		}
	}
	return as, a, b
}

// reach reports whether node r of scope rs depends on node w of scope ws,
// directly or not. A node inside an Expand's scope and the Expand task
// itself do not depend on each other: the Expand writes nothing its
// children could read, and its children end before it.
func reach(rs *scope, r int32, ws *scope, w int32) bool {
	if rs == ws {
		return rs.g.dependsOn(r, w)
	}
	sc, r, w := lift(rs, r, ws, w)
	if r == w {
		return false
	}
	return sc.g.dependsOn(r, w)
}

// declaredBefore reports whether node a of scope as comes before node b of
// scope bs in declaration order, where the tasks of an Expand's scope stand
// in the place of the Expand task.
func declaredBefore(as *scope, a int32, bs *scope, b int32) bool {
	da, db := as.depth, bs.depth
	_, a, b = lift(as, a, bs, b)
	if a == b {
		return da < db // the Expand task before its children
	}
	return a < b
}
