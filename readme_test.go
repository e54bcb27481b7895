package dag_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadmeCodeIsTested keeps the README's Go code compiled and run: each
// paragraph of each ```go block must be lines of a _test.go file of the
// module, in order and together (indentation aside), and the Example
// block must hold ExampleRun whole, from its func line to its closing
// brace, as example_test.go has it: its // Output: is then checked by go
// test.
func TestReadmeCodeIsTested(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources [][]string
	for _, pattern := range []string{"*_test.go", "*/*_test.go"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sources = append(sources, trimmedLines(string(b)))
		}
	}
	blocks := goBlocks(string(readme))
	if len(blocks) == 0 {
		t.Fatal("the README has no ```go block")
	}
	for _, block := range blocks {
		for _, para := range strings.Split(block, "\n\n") {
			lines := trimmedLines(para)
			if !slices.ContainsFunc(sources, func(src []string) bool { return containsRun(src, lines) }) {
				t.Errorf("the README's Go code\n%s\nis in no test file: copy it from the test it shows, or change that test", para)
			}
		}
	}

	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(example)
	start := strings.Index(src, "\nfunc ExampleRun() {\n")
	end := strings.Index(src[start+1:], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatal("example_test.go has no ExampleRun")
	}
	run := src[start+1 : start+1+end+2]
	if !slices.ContainsFunc(blocks, func(b string) bool { return strings.Contains(b, run) }) {
		t.Errorf("the README's example does not hold ExampleRun whole; want:\n%s", run)
	}
}

// goBlocks returns the text of every ```go block of a Markdown file.
func goBlocks(md string) []string {
	var blocks []string
	for {
		i := strings.Index(md, "```go\n")
		if i < 0 {
			return blocks
		}
		md = md[i+len("```go\n"):]
		j := strings.Index(md, "```\n")
		if j < 0 {
			return blocks
		}
		blocks = append(blocks, md[:j])
		md = md[j:]
	}
}

// trimmedLines splits s into lines without their indentation, and
// without empty lines.
func trimmedLines(s string) []string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// containsRun reports whether src holds the lines of run, one after the
// other.
func containsRun(src, run []string) bool {
	if len(run) == 0 {
		return true
	}
	for i := 0; i+len(run) <= len(src); i++ {
		if slices.Equal(src[i:i+len(run)], run) {
			return true
		}
	}
	return false
}
