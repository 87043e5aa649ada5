package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const run1 = `pkg: example.com/p
BenchmarkX/baseline-2   10   100 ns/op   5.0 hwm-MB
BenchmarkX/fn-2         10   300 ns/op   9.0 hwm-MB
BenchmarkX/fn-2         10   500 ns/op   7.0 hwm-MB
BenchmarkX/fn-2         10   400 ns/op   8.0 hwm-MB
BenchmarkRotation-2     10   2000 ns/op
BenchmarkBaselineGetSecretValue-2 10 100 ns/op
`

// TestReportRoundTrip: min/median/max over the runs, the ratio to the
// baseline row and to the baseline figure, and, on the next report, the
// ratio to the previous medians read back from the file.
func TestReportRoundTrip(t *testing.T) {
	res, order, err := parse(strings.NewReader(run1), false)
	if err != nil {
		t.Fatal(err)
	}
	first := render(res, order, nil)
	for _, want := range []string{
		"| fn | time/op (ns) | 300.0 | 400.0 | 500.0 | 4.00 |  |",
		"| fn | hwm-MB | 7.00 | 8.00 | 9.00 | 1.60 |  |",
		"| BenchmarkRotation | time/op (ns) | 2000.0 | 2000.0 | 2000.0 | 20.00 |  |",
		"- machine: ",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("report lacks %q:\n%s", want, first)
		}
	}
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := os.WriteFile(path, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	res2, order2, _ := parse(strings.NewReader(strings.ReplaceAll(run1, "2000 ns/op", "1000 ns/op")), false)
	second := render(res2, order2, previous(path))
	if !strings.Contains(second, "| BenchmarkRotation | time/op (ns) | 1000.0 | 1000.0 | 1000.0 | 10.00 | 0.50 |") {
		t.Errorf("the second report does not show the change against the first:\n%s", second)
	}
}
