package dag_test

// The tests of WriteDOT and WriteMermaid. Every output is compared with a
// golden file in testdata/render (rewrite them with go test -run Render
// -update, then read the diff), parsed by gonum's DOT parser or checked by
// mermaidCheck, and its labels decoded back to the names they show. Graphviz
// renders every DOT output to SVG when the dot command is installed, and
// must be in CI (CI=1 or DAG_REQUIRE_DOT=1).

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"gonum.org/v1/gonum/graph/formats/dot"
	"gonum.org/v1/gonum/graph/formats/dot/ast"

	"github.com/dagrun/dag"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the render tests in testdata/render")

// expandFunc stands for an Expand that the renderer never calls.
func expandFunc(context.Context, dag.Values) ([]dag.Task, error) { return nil, nil }

// nastyNames are task names that break naive DOT or Mermaid writers, each
// with the first line its label must show.
var nastyNames = []struct{ name, shows string }{
	{`say "hi"`, `say "hi"`},
	{`back\slash\`, `back\slash\`}, // a trailing backslash escapes Graphviz's closing quote
	{`\"`, `\"`},
	{"two\nlines", "two"},
	{"a -> b --> c", "a -> b --> c"},
	{"x/y", "x/y"},
	{"[brackets] {braces} (parens) <angles> |pipes|", "[brackets] {braces} (parens) <angles> |pipes|"},
	{"100% %%{init: {}}%% #hash; semi;colon", "100% %%{init: {}}%% #hash; semi;colon"},
	{"#quot; &amp; &lt;b&gt; <br> &#92;", "#quot; &amp; &lt;b&gt; <br> &#92;"},
	{`style:x #35; y;`, `style:x #35; y;`}, // Mermaid strips a ";" from such lines
	{"`markdown` **bold**", "`markdown` **bold**"},
	{"tab\there\x00nul\x7f", `tab\there\x00nul\x7f`},
	{"bad\xffutf8", `bad\xffutf8`},
	{"line\u2028sep", `line\u2028sep`},
	{"ﬂ°°ß¶ unicode ✓ 日本語 émoji 🎉", "ﬂ°°ß¶ unicode ✓ 日本語 émoji 🎉"},
	{"end", "end"},
	{"subgraph", "subgraph"},
	{"n0", "n0"},
	{"cluster_0", "cluster_0"},
	{strings.Repeat("long-", 2000), strings.Repeat("long-", 16) + "…"},
	{" ", " "},
}

// renderCase is one picture to draw.
type renderCase struct {
	name  string
	tasks []dag.Task
	res   *dag.Result
}

func renderCases() []renderCase {
	smoothie := []dag.Task{
		{Name: "dice-banana"},
		{Name: "dice-mango"},
		{Name: "blend", DependsOn: []string{"dice-banana", "dice-mango"}},
		{Name: "garnish", DependsOn: []string{"blend"}, ContinueOnFailure: true},
	}
	grouped := []dag.Task{
		{Name: "fetch"},
		{Name: "build", DependsOn: []string{"fetch"}, Sub: []dag.Task{
			{Name: "compile"},
			{Name: "test", DependsOn: []string{"compile"}, Sub: []dag.Task{
				{Name: "unit"},
				{Name: "race"},
			}},
			{Name: "vet"},
		}},
		{Name: "fan", DependsOn: []string{"fetch"}, Expand: expandFunc},
		{Name: "idle", DependsOn: []string{"fetch"}, Expand: expandFunc},
		{Name: "ship", DependsOn: []string{"build", "fan", "fan", "missing"}},
		{Name: "notify", DependsOn: []string{"ship"}},
		{Name: "cleanup", DependsOn: []string{"ship"}},
		{Name: "alert", DependsOn: []string{"build"}},
	}
	composed, composedRes := composedRun()
	var nasty []dag.Task
	nastyRes := &dag.Result{State: dag.Running, Tasks: map[string]dag.TaskResult{}}
	for i, n := range nastyNames {
		t := dag.Task{Name: n.name}
		if i > 0 {
			t.DependsOn = []string{nastyNames[i-1].name}
		}
		nasty = append(nasty, t)
		nastyRes.Tasks[n.name] = dag.TaskResult{State: dag.State(i % 9), Attempts: i % 3, Err: errors.New("failed on " + n.name)}
	}
	nasty = append(nasty, dag.Task{Name: "group \"g\"\\", DependsOn: []string{nastyNames[0].name}, Sub: []dag.Task{
		{Name: nastyNames[1].name}, {Name: nastyNames[3].name, DependsOn: []string{nastyNames[1].name}},
	}})
	return []renderCase{
		{name: "plan", tasks: smoothie},
		{name: "finished", tasks: smoothie, res: &dag.Result{State: dag.Failed, Tasks: map[string]dag.TaskResult{
			"dice-banana": {State: dag.Completed, Attempts: 1},
			"dice-mango":  {State: dag.Completed, Attempts: 3, Err: errors.New("dag: mango: timeout\nretried")},
			"blend":       {State: dag.Failed, Attempts: 2, Err: errors.New(`blender says "no"`)},
			"garnish":     {State: dag.UpstreamFailed},
		}}},
		{name: "groups-plan", tasks: grouped},
		{name: "groups-live", tasks: grouped, res: &dag.Result{State: dag.Running, Tasks: map[string]dag.TaskResult{
			"fetch":            {State: dag.Completed, Attempts: 1, Restored: true},
			"build":            {State: dag.Running},
			"build/compile":    {State: dag.Completed, Attempts: 1, Restored: true},
			"build/test":       {State: dag.Running},
			"build/test/unit":  {State: dag.Running, Attempts: 2},
			"build/test/race":  {State: dag.Retrying, Attempts: 1, Err: errors.New("data race")},
			"build/vet":        {State: dag.Ready},
			"fan":              {State: dag.Running, Attempts: 1},
			"fan/item-0":       {State: dag.Completed, Attempts: 1},
			"fan/item-1":       {State: dag.Skipped, Attempts: 1, Err: dag.ErrSkip},
			"fan/more":         {State: dag.Running},
			"fan/more/deep":    {State: dag.Failed, Attempts: 1, Err: errors.New("boom")},
			"idle":             {State: dag.Canceled, Attempts: 1},
			"ship":             {State: dag.Pending},
			"cleanup":          {State: dag.State(200)},
			"alert":            {State: dag.Skipped},
			"gone":             {State: dag.Completed, Attempts: 1},
			"fetch/not-a-kid":  {State: dag.Completed, Attempts: 1},
			"build/test/extra": {State: dag.Pending},
		}}},
		{name: "result-only", res: &dag.Result{State: dag.Completed, Tasks: map[string]dag.TaskResult{
			"a":     {State: dag.Completed, Attempts: 1},
			"g":     {State: dag.Completed},
			"g/b":   {State: dag.Completed, Attempts: 1},
			"g/h":   {State: dag.Completed},
			"g/h/c": {State: dag.Completed, Attempts: 1, Restored: true},
		}}},
		{name: "names", tasks: nasty, res: nastyRes},
		{name: "composed-run", tasks: composed, res: composedRes},
		{name: "empty"},
	}
}

// composedRun runs a job with a group, an Expand whose children hold a
// group and a tolerated failure, and a restored task, and returns its
// tasks and Result.
func composedRun() ([]dag.Task, *dag.Result) {
	ok := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
	tasks := []dag.Task{
		{Name: "fetch", Func: ok},
		{Name: "build", DependsOn: []string{"fetch"}, Sub: []dag.Task{
			{Name: "compile", Func: ok},
			{Name: "test", DependsOn: []string{"compile"}, Func: ok},
		}},
		{Name: "fan", DependsOn: []string{"fetch"}, Expand: func(context.Context, dag.Values) ([]dag.Task, error) {
			return []dag.Task{
				{Name: "item-0", Func: ok},
				{Name: "item-1", ContinueOnFailure: true, Func: func(context.Context, dag.Values) (map[string]any, error) {
					return nil, errors.New("no such item")
				}},
				{Name: "more", Sub: []dag.Task{{Name: "deep", Func: ok}}},
			}, nil
		}},
		{Name: "ship", DependsOn: []string{"build", "fan"}, Func: ok},
	}
	earlier := &dag.Result{State: dag.Failed, Tasks: map[string]dag.TaskResult{
		"fetch": {State: dag.Completed, Attempts: 1, Output: map[string]any{}},
	}}
	job, err := dag.Run(context.Background(), tasks, dag.Options{MaxParallel: 1, Resume: earlier})
	if err != nil {
		panic(err)
	}
	res, err := job.Wait()
	if err != nil {
		panic(err)
	}
	return tasks, &res
}

// TestRenderSnapshot draws a running job from Job.Snapshot: the running
// child of a group, the group and what waits for it show their live
// states.
func TestRenderSnapshot(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	ok := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
	tasks := []dag.Task{
		{Name: "a", Func: ok},
		{Name: "g", DependsOn: []string{"a"}, Sub: []dag.Task{
			{Name: "x", Func: func(context.Context, dag.Values) (map[string]any, error) {
				close(started)
				<-release
				return nil, nil
			}},
			{Name: "y", DependsOn: []string{"x"}, Func: ok},
		}},
		{Name: "b", DependsOn: []string{"g"}, Func: ok},
	}
	job, err := dag.Run(t.Context(), tasks, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Wait()
	defer close(release)
	<-started
	snap := job.Snapshot()
	var d, m bytes.Buffer
	if err := dag.WriteDOT(&d, tasks, &snap); err != nil {
		t.Fatal(err)
	}
	if err := dag.WriteMermaid(&m, tasks, &snap); err != nil {
		t.Fatal(err)
	}
	dl, err := dotLabels(d.Bytes())
	if err != nil {
		t.Fatalf("DOT output does not parse: %v\n%s", err, d.Bytes())
	}
	ml, err := mermaidCheck(m.String())
	if err != nil {
		t.Fatalf("Mermaid output is malformed: %v\n%s", err, m.Bytes())
	}
	want := map[string]string{
		"n0": "a\ncompleted, 1 attempt",
		"n2": "x\nrunning, 1 attempt",
		"n3": "y\npending",
		"n4": "b\npending",
	}
	for id, label := range want {
		if dl[id] != label || ml[id] != label {
			t.Errorf("label of %s: DOT %q, Mermaid %q; want %q", id, dl[id], ml[id], label)
		}
	}
	if dl["cluster_1"] != "g\nrunning" || ml["n1"] != "g\nrunning" {
		t.Errorf("label of the group: DOT %q, Mermaid %q; want %q", dl["cluster_1"], ml["n1"], "g\nrunning")
	}
}

// TestRender compares both formats of every case with their golden files
// and checks each output with a parser.
func TestRender(t *testing.T) {
	t.Parallel()
	for _, c := range renderCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var d, m bytes.Buffer
			if err := dag.WriteDOT(&d, c.tasks, c.res); err != nil {
				t.Fatalf("WriteDOT: %v", err)
			}
			if err := dag.WriteMermaid(&m, c.tasks, c.res); err != nil {
				t.Fatalf("WriteMermaid: %v", err)
			}
			golden(t, c.name+".dot", d.Bytes())
			golden(t, c.name+".mmd", m.Bytes())
			if _, err := dotLabels(d.Bytes()); err != nil {
				t.Errorf("DOT output does not parse: %v\n%s", err, d.Bytes())
			}
			if _, err := mermaidCheck(m.String()); err != nil {
				t.Errorf("Mermaid output is malformed: %v\n%s", err, m.Bytes())
			}
		})
	}
}

// golden compares got with testdata/render/name, or rewrites it with
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "render", name)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run go test -run TestRender -update to create it", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s; if the change is intended, run go test -run TestRender -update and read the diff.\ngot:\n%s", path, got)
	}
}

// TestRenderNames checks that every nasty name shows, in both formats, as
// its label's first line: escaping loses or adds nothing.
func TestRenderNames(t *testing.T) {
	t.Parallel()
	var tasks []dag.Task
	res := &dag.Result{Tasks: map[string]dag.TaskResult{}}
	for _, n := range nastyNames {
		tasks = append(tasks, dag.Task{Name: n.name})
		res.Tasks[n.name] = dag.TaskResult{State: dag.Failed, Attempts: 2, Err: errors.New(n.name)}
	}
	for _, r := range []*dag.Result{nil, res} {
		var d, m bytes.Buffer
		if err := dag.WriteDOT(&d, tasks, r); err != nil {
			t.Fatal(err)
		}
		if err := dag.WriteMermaid(&m, tasks, r); err != nil {
			t.Fatal(err)
		}
		dl, err := dotLabels(d.Bytes())
		if err != nil {
			t.Fatalf("DOT output does not parse: %v", err)
		}
		ml, err := mermaidCheck(m.String())
		if err != nil {
			t.Fatalf("Mermaid output is malformed: %v", err)
		}
		for i, n := range nastyNames {
			id := "n" + strconv.Itoa(i)
			if got, _, _ := strings.Cut(dl[id], "\n"); got != n.shows {
				t.Errorf("DOT label of %q = %q; want %q", n.name, got, n.shows)
			}
			if got, _, _ := strings.Cut(ml[id], "\n"); got != n.shows {
				t.Errorf("Mermaid label of %q = %q; want %q", n.name, got, n.shows)
			}
		}
	}
}

// TestRenderGraphviz has Graphviz render every DOT output to SVG: it must
// succeed without a warning, give well-formed XML, and show every nasty
// name's label.
func TestRenderGraphviz(t *testing.T) {
	t.Parallel()
	dotCmd, err := exec.LookPath("dot")
	if err != nil {
		msg := "the dot command of Graphviz is not installed (Debian: apt-get install graphviz)"
		if os.Getenv("CI") != "" || os.Getenv("DAG_REQUIRE_DOT") == "1" {
			t.Fatal(msg + "; CI or DAG_REQUIRE_DOT=1 requires it")
		}
		t.Skip(msg + "; skipping the rendering test")
	}
	for _, c := range renderCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var in, out, stderr bytes.Buffer
			if err := dag.WriteDOT(&in, c.tasks, c.res); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(dotCmd, "-Tsvg")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &out, &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, stderr.Bytes(), in.Bytes())
			}
			texts, err := svgTexts(out.Bytes())
			if err != nil {
				t.Fatalf("dot -Tsvg wrote malformed XML: %v", err)
			}
			if c.name != "names" {
				return
			}
			for _, n := range nastyNames {
				if !texts[strings.TrimSpace(n.shows)] && n.shows != " " {
					t.Errorf("the SVG shows no text %q for the task named %q", n.shows, n.name)
				}
			}
		})
	}
}

// svgTexts returns the text elements of an SVG, trimmed.
func svgTexts(svg []byte) (map[string]bool, error) {
	texts := make(map[string]bool)
	d := xml.NewDecoder(bytes.NewReader(svg))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	inText := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return texts, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			inText = tok.Name.Local == "text"
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				// Graphviz writes spaces as non-breaking spaces where
				// several follow each other.
				texts[strings.TrimSpace(strings.ReplaceAll(string(tok), "\u00a0", " "))] = true
			}
		}
	}
}

// dotLabels parses a DOT output with gonum's parser and returns the label
// of each node and cluster, decoded as Graphviz does (a \n is a line break,
// and HTML entities are read).
func dotLabels(b []byte) (map[string]string, error) {
	f, err := dot.ParseBytes(b)
	if err != nil {
		return nil, err
	}
	if len(f.Graphs) != 1 {
		return nil, fmt.Errorf("%d graphs; want 1", len(f.Graphs))
	}
	labels := make(map[string]string)
	decode := func(v string) (string, error) {
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return "", fmt.Errorf("attribute value %s is not a quoted string", v)
		}
		// The DOT scanner reads \" as an escaped quote, then Graphviz
		// reads HTML entities, then the escapes of its labels.
		var b strings.Builder
		raw := v[1 : len(v)-1]
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\\' && i+1 < len(raw) && (raw[i+1] == '"' || raw[i+1] == '\\') {
				if raw[i+1] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(raw[i+1])
				i++
				continue
			}
			b.WriteByte(raw[i])
		}
		unescaped := html.UnescapeString(b.String())
		b.Reset()
		for i := 0; i < len(unescaped); i++ {
			if unescaped[i] != '\\' {
				b.WriteByte(unescaped[i])
				continue
			}
			if i+1 == len(unescaped) {
				return "", fmt.Errorf("attribute value %s ends with a backslash", v)
			}
			switch unescaped[i+1] {
			case 'n':
				b.WriteByte('\n')
			case '\\', '"':
				b.WriteByte(unescaped[i+1])
			default:
				return "", fmt.Errorf("attribute value %s has the escape \\%c", v, unescaped[i+1])
			}
			i++
		}
		return b.String(), nil
	}
	var walk func(id string, stmts []ast.Stmt) error
	walk = func(id string, stmts []ast.Stmt) error {
		for _, s := range stmts {
			switch s := s.(type) {
			case *ast.NodeStmt:
				if s.Node.ID == "legend" {
					continue // an HTML-like label, of no task
				}
				for _, a := range s.Attrs {
					if a.Key == "label" || a.Key == "tooltip" {
						l, err := decode(a.Val)
						if err != nil {
							return err
						}
						if a.Key == "label" {
							labels[s.Node.ID] = l
						}
					}
				}
			case *ast.Attr:
				if a := s; a.Key == "label" || a.Key == "tooltip" {
					l, err := decode(a.Val)
					if err != nil {
						return err
					}
					if a.Key == "label" {
						labels[id] = l
					}
				}
			case *ast.Subgraph:
				if err := walk(s.ID, s.Stmts); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return labels, walk("", f.Graphs[0].Stmts)
}

// The grammar of the Mermaid that WriteMermaid writes, line by line.
var (
	mmClassDef = regexp.MustCompile(`^\tclassDef ([a-z_]+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},color:#[0-9a-f]{6}$`)
	mmNode     = regexp.MustCompile(`^\t+(n[0-9]+|legend_[a-z_]+)(\["|\[\["|\{\{")([^"]*)("\]|"\]\]|"\}\}):::([a-z_]+)$`)
	mmSubgraph = regexp.MustCompile(`^\t+subgraph (n[0-9]+|legend) \["([^"]*)"\]$`)
	mmStyle    = regexp.MustCompile(`^\tstyle (n[0-9]+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},stroke-width:2px$`)
	mmEdge     = regexp.MustCompile(`^\t(n[0-9]+) --> (n[0-9]+)$`)
	mmEntity   = regexp.MustCompile(`#([a-z]+|[0-9]+);`)
	// Mermaid's entity preprocessing drops the ";" that ends a match of
	// these, anywhere in the text.
	mmStrip = regexp.MustCompile(`(style|classDef).*:\S*#.*;`)
)

// mermaidCheck checks a Mermaid output against the grammar above: every
// line is one of its statements, subgraphs are closed, identifiers are
// unique and defined before edges use them, and every label is delimited
// and holds only safe characters, line breaks and entity codes. It returns
// each node's and subgraph's label, decoded.
func mermaidCheck(s string) (map[string]string, error) {
	if !strings.HasSuffix(s, "\n") {
		return nil, errors.New("no final newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if lines[0] != "flowchart LR" {
		return nil, fmt.Errorf("first line %q; want flowchart LR", lines[0])
	}
	labels := make(map[string]string)
	classes := make(map[string]bool)
	depth := 0
	define := func(id, label string) error {
		if _, dup := labels[id]; dup {
			return fmt.Errorf("%s defined twice", id)
		}
		l, err := mermaidLabel(label)
		labels[id] = l
		return err
	}
	for i, line := range lines[1:] {
		var err error
		if m := mmStrip.FindString(line); m != "" && !mmClassDef.MatchString(line) && !mmStyle.MatchString(line) {
			err = fmt.Errorf("Mermaid would strip the final ; of %q", m)
		} else if m := mmClassDef.FindStringSubmatch(line); m != nil {
			classes[m[1]] = true
		} else if m := mmNode.FindStringSubmatch(line); m != nil {
			closing := map[string]string{`["`: `"]`, `[["`: `"]]`, `{{"`: `"}}`}[m[2]]
			switch {
			case m[4] != closing:
				err = fmt.Errorf("label opened with %s closed with %s", m[2], m[4])
			case !classes[m[5]]:
				err = fmt.Errorf("class %s has no classDef", m[5])
			default:
				err = define(m[1], m[3])
			}
		} else if m := mmSubgraph.FindStringSubmatch(line); m != nil {
			depth++
			err = define(m[1], m[2])
		} else if line == strings.Repeat("\t", depth)+"end" && depth > 0 {
			depth--
		} else if m := mmStyle.FindStringSubmatch(line); m != nil {
			if _, ok := labels[m[1]]; !ok {
				err = fmt.Errorf("style of undefined %s", m[1])
			}
		} else if m := mmEdge.FindStringSubmatch(line); m != nil && depth == 0 {
			for _, id := range m[1:] {
				if _, ok := labels[id]; !ok {
					err = fmt.Errorf("edge to undefined %s", id)
				}
			}
		} else {
			err = errors.New("not a statement of the grammar")
		}
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %v", i+2, line, err)
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d subgraphs not closed", depth)
	}
	return labels, nil
}

// mermaidLabel checks the text between a label's quotes and decodes it.
func mermaidLabel(l string) (string, error) {
	bare := mmEntity.ReplaceAllString(strings.ReplaceAll(l, "<br>", ""), "")
	if i := strings.IndexFunc(bare, func(r rune) bool {
		return strings.ContainsRune("\"#;<>&%{}[]|:`\\", r) || r < ' ' || r == 0x7f || r == utf8.RuneError || !strconv.IsPrint(r)
	}); i >= 0 {
		return "", fmt.Errorf("label %q holds %q unescaped", l, bare[i:])
	}
	var err error
	decoded := mmEntity.ReplaceAllStringFunc(strings.ReplaceAll(l, "<br>", "\n"), func(e string) string {
		name := e[1 : len(e)-1]
		if name == "quot" {
			return `"`
		}
		n, perr := strconv.Atoi(name)
		if perr != nil || !utf8.ValidRune(rune(n)) {
			err = fmt.Errorf("label %q has a bad entity %s", l, e)
		}
		return string(rune(n))
	})
	return decoded, err
}

// TestRenderWriteError checks that a failing writer's error is returned.
func TestRenderWriteError(t *testing.T) {
	t.Parallel()
	tasks := benchTasksRender(3000)
	for _, write := range []func(io.Writer, []dag.Task, *dag.Result) error{dag.WriteDOT, dag.WriteMermaid} {
		w := &failWriter{after: 2}
		if err := write(w, tasks, nil); !errors.Is(err, errFailWriter) {
			t.Errorf("error = %v; want %v", err, errFailWriter)
		}
		if w.calls > w.after+1 {
			t.Errorf("%d writes after the first error", w.calls-w.after-1)
		}
	}
}

var errFailWriter = errors.New("disk full")

type failWriter struct{ calls, after int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls > w.after {
		return 0, errFailWriter
	}
	return len(p), nil
}

// FuzzRender checks that no task name, error text or state breaks either
// format: the DOT parses, the Mermaid passes mermaidCheck, and a printable
// name of up to 80 characters shows as it is. Search for more with
//
//	go test -run='^$' -fuzz=FuzzRender -fuzztime=60s .
func FuzzRender(f *testing.F) {
	for i := 0; i+2 < len(nastyNames); i += 3 {
		f.Add(nastyNames[i].name, nastyNames[i+1].name, nastyNames[i+2].name, "err\n\"x\"", uint8(i))
	}
	f.Fuzz(func(t *testing.T, a, b, c, errText string, states uint8) {
		tasks := []dag.Task{
			{Name: a},
			{Name: b, DependsOn: []string{a, c}},
			{Name: c, DependsOn: []string{a}, Sub: []dag.Task{{Name: a}, {Name: b, DependsOn: []string{a}}}},
			{Name: "x" + a, DependsOn: []string{c}, Expand: expandFunc},
		}
		res := &dag.Result{Tasks: map[string]dag.TaskResult{
			a:                  {State: dag.State(states % 10), Attempts: int(states), Err: errors.New(errText)},
			b:                  {State: dag.State(states / 10 % 10), Restored: states&1 == 1},
			c + "/" + b:        {State: dag.State(states / 100), Err: errors.New(errText)},
			"x" + a + "/" + b:  {State: dag.Running, Attempts: 1},
			"x" + a + "/" + c:  {State: dag.Failed, Attempts: 1},
			c + "/" + c:        {State: dag.Skipped},
			b + "/" + errText:  {State: dag.Completed},
			errText + "/" + a:  {State: dag.Canceled},
			"x" + a + "/" + a:  {State: dag.Canceled},
			"x" + a + "/" + "": {State: dag.Canceled},
		}}
		for _, r := range []*dag.Result{nil, res} {
			var d, m bytes.Buffer
			if err := dag.WriteDOT(&d, tasks, r); err != nil {
				t.Fatal(err)
			}
			if err := dag.WriteMermaid(&m, tasks, r); err != nil {
				t.Fatal(err)
			}
			dl, err := dotLabels(d.Bytes())
			if err != nil {
				t.Fatalf("DOT output does not parse: %v\n%s", err, d.Bytes())
			}
			ml, err := mermaidCheck(m.String())
			if err != nil {
				t.Fatalf("Mermaid output is malformed: %v\n%s", err, m.Bytes())
			}
			if plain(a) {
				if got, _, _ := strings.Cut(dl["n0"], "\n"); got != a {
					t.Errorf("DOT label of %q = %q", a, got)
				}
				if got, _, _ := strings.Cut(ml["n0"], "\n"); got != a {
					t.Errorf("Mermaid label of %q = %q", a, got)
				}
			}
		}
	})
}

// plain reports whether a name shows as it is in a label.
func plain(s string) bool {
	if utf8.RuneCountInString(s) > 80 {
		return false
	}
	for _, r := range s {
		if !strconv.IsPrint(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// benchTasksRender returns a job of n tasks in chains of ten, each task
// depending on the one before and on one of the previous chain.
func benchTasksRender(n int) []dag.Task {
	tasks := make([]dag.Task, n)
	for i := range tasks {
		tasks[i].Name = fmt.Sprintf("task-%05d", i)
		if i%10 > 0 {
			tasks[i].DependsOn = append(tasks[i].DependsOn, tasks[i-1].Name)
		}
		if i >= 10 {
			tasks[i].DependsOn = append(tasks[i].DependsOn, tasks[i-10+(i*7)%10].Name)
		}
	}
	return tasks
}

// benchResultRender returns a live Result of the tasks, in every state.
func benchResultRender(tasks []dag.Task) *dag.Result {
	rng := rand.New(rand.NewPCG(1, 2))
	res := &dag.Result{State: dag.Running, Tasks: make(map[string]dag.TaskResult, len(tasks))}
	for _, t := range tasks {
		r := dag.TaskResult{State: dag.State(rng.IntN(9)), Attempts: rng.IntN(3)}
		if r.State == dag.Failed {
			r.Err = errors.New("dag: something went wrong")
		}
		res.Tasks[t.Name] = r
	}
	return res
}

// BenchmarkWriteDOT and BenchmarkWriteMermaid draw a running job of 10,000
// tasks, as a live view would every second.
func BenchmarkWriteDOT(b *testing.B) {
	benchRender(b, dag.WriteDOT)
}

func BenchmarkWriteMermaid(b *testing.B) {
	benchRender(b, dag.WriteMermaid)
}

func benchRender(b *testing.B, write func(io.Writer, []dag.Task, *dag.Result) error) {
	tasks := benchTasksRender(10_000)
	res := benchResultRender(tasks)
	b.ReportAllocs()
	for b.Loop() {
		if err := write(io.Discard, tasks, res); err != nil {
			b.Fatal(err)
		}
	}
}

// The smoothie job, run, then drawn with its final states: paste the
// output in a ```mermaid block of a Markdown file.
func ExampleWriteMermaid() {
	tasks := smoothie()
	job, err := dag.Run(context.Background(), tasks, dag.Options{
		Name: "smoothie",
		Context: map[string]any{
			"fruits": []string{"banana", "mango"},
			"sugar":  "brown sugar",
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, _ := job.Wait()
	if err := dag.WriteMermaid(os.Stdout, tasks, &res); err != nil {
		fmt.Println(err)
	}
	// Output:
	// flowchart LR
	// 	classDef completed fill:#2e8b57,stroke:#4d4d4d,color:#ffffff
	// 	n0["dice-banana<br>completed, 1 attempt"]:::completed
	// 	n1["dice-mango<br>completed, 1 attempt"]:::completed
	// 	n2["blend<br>completed, 1 attempt"]:::completed
	// 	n3["garnish<br>completed, 1 attempt"]:::completed
	// 	n0 --> n2
	// 	n1 --> n2
	// 	n2 --> n3
	// 	subgraph legend ["states"]
	// 		legend_completed["completed"]:::completed
	// 	end
}

// The plan of a job with a group, for Graphviz: go run . | dot -Tsvg.
func ExampleWriteDOT() {
	tasks := []dag.Task{
		{Name: "fetch"},
		{Name: "build", DependsOn: []string{"fetch"}, Sub: []dag.Task{
			{Name: "compile"},
			{Name: "test", DependsOn: []string{"compile"}},
		}},
		{Name: "ship", DependsOn: []string{"build"}},
	}
	if err := dag.WriteDOT(os.Stdout, tasks, nil); err != nil {
		fmt.Println(err)
	}
	// Output:
	// digraph dag {
	// 	graph [rankdir=LR, compound=true, fontname="Helvetica,Arial,sans-serif", fontsize=12];
	// 	node [shape=box, style="rounded,filled", fontname="Helvetica,Arial,sans-serif", fontsize=11, color="#4d4d4d", fillcolor="#e8e8e8", fontcolor="#1a1a1a"];
	// 	edge [color="#4d4d4d", arrowsize=0.7];
	// 	n0 [label="fetch", tooltip="fetch"];
	// 	subgraph cluster_1 {
	// 		label="build"; tooltip="build"; style="rounded,filled"; color="#4d4d4d"; fillcolor="#fafafa";
	// 		n2 [label="compile", tooltip="build/compile"];
	// 		n3 [label="test", tooltip="build/test"];
	// 	}
	// 	n4 [label="ship", tooltip="ship"];
	// 	n0 -> n2 [lhead=cluster_1];
	// 	n2 -> n3;
	// 	n3 -> n4 [ltail=cluster_1];
	// }
}
