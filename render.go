package dag

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WriteDOT writes the tasks to w as a Graphviz DOT digraph, for the dot
// command (dot -Tsvg) and the many tools that read DOT.
//
// With res nil it draws the plan: every task, with an edge from each
// dependency to the task that depends on it. Given a Result it also draws
// what the job did: each task filled with the colour of its state, its
// attempts in its label and its error in its tooltip, and a legend of the
// states shown. Pass &res for a finished job, as [Job.Wait] returned it, or
// the Result of [Job.Snapshot] to draw a running job.
//
// A group (Task.Sub, at any depth) is a cluster around its tasks, labelled
// with its name and state; a dependency on a group, or of one, is an edge
// to or from the cluster's border. An Expand task is a hexagon until res
// holds tasks named under it ("expand/child"), and then a cluster of those
// tasks: res does not say how the children depend on each other, so no
// edge is drawn between them. More generally, a task of res that tasks do
// not declare is drawn inside the group whose name is the longest prefix of
// its own (a name such as "g/c" goes into group "g"), or at the top level,
// and without edges. A task restored from an earlier run
// ([TaskResult.Restored]) has a double border and says "restored".
//
// Names may hold any text: nodes get generated identifiers (n0, n1, ...)
// and labels are escaped, with control characters and invalid UTF-8 shown
// as Go escapes such as \t and \xff. A label shows at most 80 characters of
// a name, and a tooltip at most 1000 of the name and 1000 of the error.
// Dependencies on tasks that tasks do not declare are left out.
//
// WriteDOT takes time and memory linear in the number of tasks and
// dependencies (a few milliseconds for 10,000 tasks), so it can redraw a
// running job every second. It returns the first error of w.
func WriteDOT(w io.Writer, tasks []Task, res *Result) error {
	p := newPicture(tasks, res)
	o := &output{w: w}
	p.dot(o)
	return o.flush()
}

// WriteMermaid writes the tasks to w as a Mermaid flowchart, which GitHub,
// GitLab and many documentation tools render from a ```mermaid block. It
// draws what [WriteDOT] draws, with the same colours, with these
// differences: Mermaid has no tooltips, so errors are left out; a restored
// task has double side borders; and an edge to or from a group joins the
// group's box.
//
// Mermaid renderers refuse diagrams longer than a limit (50,000 characters
// by default, their maxTextSize setting), about 500 tasks: draw a larger job
// with WriteDOT, or raise the limit.
func WriteMermaid(w io.Writer, tasks []Task, res *Result) error {
	p := newPicture(tasks, res)
	o := &output{w: w}
	p.mermaid(o)
	return o.flush()
}

// The palette gives each state the colour both formats fill its tasks with,
// in the spirit of Airflow's: greys for what has not run or was stopped,
// greens for work under way and done, yellow for a retry, red for a failure,
// orange and pink for tasks that did not run. fill and font are the node's
// colours; a group's box has a border of fill around a pale tint of it.
var palette = [numStates]struct{ fill, font string }{
	Pending:        {"#e8e8e8", "#1a1a1a"},
	Ready:          {"#d2b48c", "#1a1a1a"},
	Running:        {"#8fd14f", "#1a1a1a"},
	Retrying:       {"#ffcc00", "#1a1a1a"},
	Completed:      {"#2e8b57", "#ffffff"},
	Failed:         {"#d62728", "#ffffff"},
	Canceled:       {"#595959", "#ffffff"},
	Skipped:        {"#ff9ecf", "#1a1a1a"},
	UpstreamFailed: {"#ff8c00", "#1a1a1a"},
}

// pale is the background of a group's box: its state's fill, mostly white.
var pale = func() (p [numStates]string) {
	for s, c := range palette {
		v, _ := strconv.ParseUint(c.fill[1:], 16, 32)
		b := []byte{'#'}
		for shift := 16; shift >= 0; shift -= 8 {
			ch := (v >> shift) & 0xff
			ch = 255 - (255-ch)*15/100
			b = append(b, "0123456789abcdef"[ch>>4], "0123456789abcdef"[ch&15])
		}
		p[s] = string(b)
	}
	return p
}()

const (
	strokeColor = "#4d4d4d" // borders and edges
	labelMax    = 80        // runes of a name in a label
	tooltipMax  = 1000      // runes of a name, and of an error, in a tooltip
)

// A picture is what both formats draw: items (tasks and groups) in
// declaration order, each group's members, and the edges.
type picture struct {
	items    []item
	top      []int32    // the items outside any group, in order
	edges    [][2]int32 // dependency -> dependent
	res      bool       // there is a Result: draw states
	used     [numStates]bool
	restored bool // some item is restored
}

type item struct {
	name    string  // full name: "group/child"
	short   string  // the name within its group
	members []int32 // a group's items; a cluster iff not empty
	expand  bool    // an Expand task
	group   bool    // a Sub group
	state   State
	restore bool
	tries   int
	err     error
	// first and last are a cluster's first and last plain node, the ends
	// of DOT edges to and from it.
	first, last int32
}

func (it *item) cluster() bool { return len(it.members) > 0 }

// newPicture lays out tasks and res; see WriteDOT for the rules.
func newPicture(tasks []Task, res *Result) *picture {
	n, ndeps := countTasks(tasks)
	if res != nil {
		n = max(n, len(res.Tasks))
	}
	p := &picture{
		res:   res != nil,
		items: make([]item, 0, n),
		top:   make([]int32, 0, len(tasks)),
		edges: make([][2]int32, 0, ndeps),
	}
	index := make(map[string]int32, n)

	// The declared tasks, depth first, so that a group's members follow it.
	var add func(tasks []Task, prefix string, parent int32)
	add = func(tasks []Task, prefix string, parent int32) {
		for i := range tasks {
			t := &tasks[i]
			k := int32(len(p.items))
			p.items = append(p.items, item{name: prefix + t.Name, short: t.Name, expand: t.Expand != nil && len(t.Sub) == 0})
			if _, dup := index[p.items[k].name]; !dup {
				index[p.items[k].name] = k
			}
			if parent < 0 {
				p.top = append(p.top, k)
			} else {
				p.items[parent].members = append(p.items[parent].members, k)
			}
			if len(t.Sub) > 0 {
				p.items[k].group = true
				add(t.Sub, p.items[k].name+"/", k)
			}
		}
	}
	add(tasks, "", -1)
	declared := int32(len(p.items))

	// The edges, once every name is known, each dependency once: the same
	// walk again, so that the k-th task met is item k.
	seen := make([]int32, declared)
	for i := range seen {
		seen[i] = -1
	}
	k := int32(0)
	var link func(tasks []Task, prefix string)
	link = func(tasks []Task, prefix string) {
		for i := range tasks {
			t, it := &tasks[i], k
			k++
			for _, name := range t.DependsOn {
				j, ok := index[prefix+name]
				if !ok || seen[j] == it {
					continue
				}
				seen[j] = it
				p.edges = append(p.edges, [2]int32{j, it})
			}
			if len(t.Sub) > 0 {
				link(t.Sub, p.items[it].name+"/")
			}
		}
	}
	link(tasks, "")

	if res == nil {
		return p
	}
	// The tasks only res knows of: children of Expand tasks, or every task
	// if none is declared. Sorted, so that a name comes before the names
	// under it and the picture does not depend on map order.
	var extra []string
	for name := range res.Tasks {
		if _, ok := index[name]; !ok {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		index[name] = int32(len(p.items))
		p.items = append(p.items, item{name: name, short: name})
	}
	for k := declared; k < int32(len(p.items)); k++ {
		it := &p.items[k]
		parent := int32(-1)
		for cut := strings.LastIndexByte(it.name, '/'); cut > 0; cut = strings.LastIndexByte(it.name[:cut], '/') {
			j, ok := index[it.name[:cut]]
			if ok && (j >= declared || p.items[j].group || p.items[j].expand) {
				parent = j
				break
			}
		}
		if parent < 0 {
			p.top = append(p.top, k)
			continue
		}
		it.short = it.name[len(p.items[parent].name)+1:]
		p.items[parent].members = append(p.items[parent].members, k)
	}
	for k := range p.items {
		it := &p.items[k]
		r := res.Tasks[it.name]
		it.state, it.tries, it.err, it.restore = r.State, r.Attempts, r.Err, r.Restored
		if it.state < numStates {
			p.used[it.state] = true
		}
		p.restored = p.restored || (r.Restored && !it.cluster())
	}
	return p
}

// countTasks returns the number of tasks, those of groups included, and
// of their dependencies.
func countTasks(tasks []Task) (n, deps int) {
	n = len(tasks)
	for i := range tasks {
		deps += len(tasks[i].DependsOn)
		if len(tasks[i].Sub) > 0 {
			a, b := countTasks(tasks[i].Sub)
			n, deps = n+a, deps+b
		}
	}
	return n, deps
}

// anchors sets first and last of every cluster. Members come after their
// group in items, so a backward sweep sees them first.
func (p *picture) anchors() {
	for k := len(p.items) - 1; k >= 0; k-- {
		it := &p.items[k]
		if !it.cluster() {
			continue
		}
		it.first, it.last = it.members[0], it.members[len(it.members)-1]
		if p.items[it.first].cluster() {
			it.first = p.items[it.first].first
		}
		if p.items[it.last].cluster() {
			it.last = p.items[it.last].last
		}
	}
}

// colors returns the item's colours, and for a group, its box's
// background.
func (p *picture) colors(it *item) (fill, font, bg string) {
	s := it.state
	if s >= numStates {
		s = Pending
	}
	return palette[s].fill, palette[s].font, pale[s]
}

// status is a label's second line: "failed, 3 attempts".
func (it *item) status(b []byte) []byte {
	if it.state < numStates {
		b = append(b, stateWords[it.state]...)
	} else {
		b = append(b, it.state.String()...)
	}
	switch {
	case it.restore:
		b = append(b, ", restored"...)
	case it.tries == 1:
		b = append(b, ", 1 attempt"...)
	case it.tries > 1:
		b = append(b, ", "...)
		b = strconv.AppendInt(b, int64(it.tries), 10)
		b = append(b, " attempts"...)
	}
	return b
}

// legend lists the states shown, in the palette's order.
func (p *picture) legend() []State {
	var states []State
	for s, used := range p.used {
		if used {
			states = append(states, State(s))
		}
	}
	return states
}

// ---- DOT ----

// ---- Mermaid ----

// ---- output ----

// output buffers what a picture writes and keeps the first write error.
type output struct {
	w   io.Writer
	buf []byte
	err error
}

func (o *output) str(s string) {
	o.buf = append(o.buf, s...)
	if len(o.buf) >= 32<<10 {
		o.flush()
	}
}

// id writes a generated identifier: n12, or cluster_12 for c.
func (o *output) id(kind byte, k int32) {
	if kind == 'c' {
		o.buf = append(o.buf, "cluster_"...)
	} else {
		o.buf = append(o.buf, kind)
	}
	o.buf = strconv.AppendInt(o.buf, int64(k), 10)
}

func (o *output) flush() error {
	if o.err == nil && len(o.buf) > 0 {
		_, o.err = o.w.Write(o.buf)
	}
	o.buf = o.buf[:0]
	return o.err
}

type format uint8

const (
	dotFormat format = iota
	mermaidFormat
)

// text writes s as the text of a quoted label in format f, at most max
// runes of it, and "…" if it was cut. A newline is a line break; other
// characters that are not printable, and bytes that are not UTF-8, are
// written as Go escapes (\t, \x00, \u2028), so that every name reads
// unambiguously. Then:
//
//   - DOT: a double quote and a backslash are escaped with a backslash,
//     and an ampersand is written &amp;, because Graphviz reads HTML
//     entities such as &lt; in labels (before their backslash escapes).
//   - Mermaid: every character but letters, digits, spaces and a few safe
//     punctuation marks is written as an entity code, "#quot;" or "#35;",
//     which Mermaid decodes after parsing. That keeps out of the text the
//     characters its grammar gives a meaning to (quotes, brackets, pipes,
//     "%%", ";", "#", backquotes for Markdown), the HTML of its labels
//     ("<", "&"), and the colons of the "style ...:...#...;" lines that its
//     entity preprocessing strips a semicolon from.
func (o *output) text(f format, s string, max int) {
	if len(s) <= max && plainASCII(f, s) {
		o.buf = append(o.buf, s...)
		return
	}
	n := 0
	for i := 0; i < len(s); {
		if n == max {
			o.char(f, '…')
			break
		}
		n++
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n':
			if f == dotFormat {
				o.buf = append(o.buf, `\n`...)
			} else {
				o.buf = append(o.buf, "<br>"...)
			}
		case r == utf8.RuneError && size == 1:
			o.escapes(f, `\x`+string("0123456789abcdef"[s[i]>>4])+string("0123456789abcdef"[s[i]&15]))
		case !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			o.escapes(f, q[1:len(q)-1])
		default:
			o.char(f, r)
		}
		i += size
		if len(o.buf) >= 32<<10 {
			o.flush()
		}
	}
}

// plainASCII reports whether s is printable ASCII that format f writes as
// it is: the common case, made fast.
func plainASCII(f format, s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if f == dotFormat && (c < ' ' || c > '~' || c == '"' || c == '\\' || c == '&') ||
			f == mermaidFormat && (c >= utf8.RuneSelf || !mermaidSafe[c]) {
			return false
		}
	}
	return true
}

// escapes writes the printable ASCII text of an escape sequence.
func (o *output) escapes(f format, s string) {
	for _, r := range s {
		o.char(f, r)
	}
}

// char writes one printable character.
func (o *output) char(f format, r rune) {
	if f == dotFormat {
		switch r {
		case '"', '\\':
			o.buf = append(o.buf, '\\', byte(r))
		case '&':
			o.buf = append(o.buf, "&amp;"...)
		default:
			o.buf = utf8.AppendRune(o.buf, r)
		}
		return
	}
	switch {
	case r == '"':
		o.buf = append(o.buf, "#quot;"...)
	case r < utf8.RuneSelf && mermaidSafe[r],
		r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
		o.buf = utf8.AppendRune(o.buf, r)
	default:
		o.buf = append(o.buf, '#')
		o.buf = strconv.AppendInt(o.buf, int64(r), 10)
		o.buf = append(o.buf, ';')
	}
}

// mermaidSafe holds the ASCII characters written as they are in a Mermaid
// label.
var mermaidSafe = func() (safe [utf8.RuneSelf]bool) {
	for _, r := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,/()+=@!?'*" {
		safe[r] = true
	}
	return safe
}()
