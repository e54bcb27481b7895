package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// demoEnv makes the test binary run the demo's main instead of the tests,
// so that the tests can run the demo as a program with its stdout a pipe or
// a terminal.
const demoEnv = "CRAWL_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(demoEnv) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// small is a crawl that takes a few tens of milliseconds.
var small = config{sections: 2, pages: 10, parallel: 4, sleep: 2 * time.Millisecond, every: time.Millisecond, missing: 0.2, flaky: 0.2, seed: 3}

// smallArgs are small's flags.
var smallArgs = []string{"-sections=2", "-pages=10", "-parallel=4", "-sleep=2ms", "-every=1ms", "-missing=0.2", "-flaky=0.2", "-seed=3"}

// demo runs the demo as a program with smallArgs.
func demo(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], smallArgs...)
	// The race detector sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), demoEnv+"=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	return cmd
}

// want returns the summary's counts and its list of failed pages, from
// the site the config describes.
func want(c config) (counts, failed string) {
	var missing []string
	pages, bytes, retried := 0, 0, 0
	for _, sec := range site(c) {
		for _, pg := range sec {
			switch {
			case pg.missing:
				missing = append(missing, pg.name)
			case pg.flaky:
				retried++
				fallthrough
			default:
				pages++
				bytes += pg.size
			}
		}
	}
	tasks := 1 + c.sections + c.sections*c.pages + 1
	return fmt.Sprintf("%d tasks, %d pages fetched (%d bytes), %d retried, %d failed", tasks, pages, bytes, retried, len(missing)),
		"failed: " + list(missing, 8)
}

var progressLine = regexp.MustCompile(`^\[ *[0-9]+\.[0-9]s\] [0-9]+/[0-9]+ done`)

// checkSummary checks the lines after the progress: the summary with
// the right counts, and the failed pages.
func checkSummary(t *testing.T, lines []string) {
	t.Helper()
	counts, failed := want(small)
	if len(lines) != 2 || !regexp.MustCompile(`^crawl completed in [0-9.]+s: `+regexp.QuoteMeta(counts)+`$`).MatchString(lines[0]) || lines[1] != failed {
		t.Errorf("summary:\n%s\nwant:\ncrawl completed in ...s: %s\n%s", strings.Join(lines, "\n"), counts, failed)
	}
}

// TestRunPlain runs the crawl in this process, in plain mode: progress
// lines, the last one with every task done, then the summary.
func TestRunPlain(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), &out, false, small); code != 0 {
		t.Errorf("run = %d; want 0\n%s", code, out.Bytes())
	}
	checkPlain(t, out.String())
}

// checkPlain checks the output of plain mode.
func checkPlain(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "\r") {
		t.Errorf("plain output has a carriage return:\n%q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	n := 0
	for n < len(lines) && progressLine.MatchString(lines[n]) {
		n++
	}
	total := 1 + small.sections*(1+small.pages) + 1
	if n < 2 || !strings.Contains(lines[n-1], fmt.Sprintf("] %d/%d done", total, total)) {
		t.Errorf("want at least two progress lines, the last with all %d tasks done:\n%s", total, out)
	}
	checkSummary(t, lines[n:])
}

// TestPipe runs the demo with its stdout a pipe: it must see that this is
// not a terminal and print plain lines.
func TestPipe(t *testing.T) {
	t.Parallel()
	out, err := demo(t).Output()
	if err != nil {
		t.Fatalf("the demo failed: %v\n%s", err, out)
	}
	checkPlain(t, string(out))
}
