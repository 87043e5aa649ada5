package doccheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
)

// root is the repository root, from this package's directory.
const root = "../.."

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// tableCases counts the elements of the slice-of-struct literals (the
// test tables) in the Test functions of a test file.
func tableCases(t *testing.T, file string) int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, file), nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	n := 0
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		// Test functions and the per-version bodies they run
		// (TestX calls eachVersion(t, testX)).
		if !ok || !strings.HasPrefix(strings.ToLower(fn.Name.Name), "test") {
			continue
		}
		ast.Inspect(fn.Body, func(node ast.Node) bool {
			lit, ok := node.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if arr, ok := lit.Type.(*ast.ArrayType); ok {
				if _, ok := arr.Elt.(*ast.StructType); ok {
					n += len(lit.Elts)
					return false
				}
			}
			return true
		})
	}
	return n
}

// fuzzTargets returns the seed files of every fuzz target, by target name.
func fuzzTargets(t *testing.T) map[string]int {
	t.Helper()
	targets := map[string]int{}
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	err := filepath.WalkDir(filepath.Join(root, "pkg"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(b), -1) {
			seeds, _ := os.ReadDir(filepath.Join(filepath.Dir(path), "testdata", "fuzz", m[1]))
			targets[m[1]] = len(seeds)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return targets
}

// mustState fails unless doc states the figure: text matching pattern
// (a regular expression with %d for the number) is in the document.
func mustState(t *testing.T, doc, text, pattern string, n int) {
	t.Helper()
	if !regexp.MustCompile(fmt.Sprintf(pattern, n)).MatchString(text) {
		plain := strings.NewReplacer(`\|`, "|", `\*`, "*").Replace(fmt.Sprintf(pattern, n))
		t.Errorf("%s does not state %q, the figure the suite has now; update the document", doc, plain)
	}
}

// TestReliabilityFigures checks every figure docs/reliability.md states
// about the suite, except the fault matrix's size, which the matrix itself
// checks (integration.TestFaultMatrixCount).
func TestReliabilityFigures(t *testing.T) {
	const doc = "docs/reliability.md"
	text := readDoc(t, doc)

	pg := tableCases(t, "pkg/credentials/postgres/hostile_test.go")
	my := tableCases(t, "pkg/credentials/mysql/hostile_test.go")
	t.Logf("hostile inputs: PostgreSQL %d, MySQL/MariaDB %d", pg, my)
	mustState(t, doc, text, `\| PostgreSQL \| %d \|`, pg)
	mustState(t, doc, text, `\| MySQL and MariaDB \| %d \|`, my)
	mustState(t, doc, text, `\*\*%d hostile inputs\*\*`, pg+my)

	targets := fuzzTargets(t)
	names := make([]string, 0, len(targets))
	seeds := 0
	for name, n := range targets {
		names = append(names, name)
		seeds += n
		mustState(t, doc, text, "\\| `"+name+"` \\| %d \\|", n)
	}
	sort.Strings(names)
	t.Logf("fuzz targets: %v, %d seed files", names, seeds)
	mustState(t, doc, text, `\*\*%d fuzz targets\*\*`, len(targets))
	mustState(t, doc, text, `%d checked-in seeds`, seeds)

	var majors []string
	for _, m := range pgcluster.Majors {
		majors = append(majors, strconv.Itoa(m))
	}
	want := "PostgreSQL " + strings.Join(majors, ", ")
	if !strings.Contains(text, want) {
		t.Errorf("%s does not list the PostgreSQL versions the tests run on: want %q", doc, want)
	}
	mustState(t, doc, text, `\*\*%d PostgreSQL versions\*\*`, len(pgcluster.Majors))
}
