package rotationtest

import (
	"bytes"
	"flag"
	"io"
	"os"
	"testing"
)

// Result is the outcome of Conform.
type Result struct {
	// OK is true when every check of the suite ran and passed.
	OK bool
	// Output is what the suite printed: on a failure, which checks failed
	// and why (never a secret value: the suite prints Fingerprints).
	Output string
}

// Conform runs the suite as Run does, for code that has no *testing.T,
// such as an Example function, and returns the outcome instead of failing
// a test. It must run inside a test binary (go test), alone: it runs the
// suite as a test of its own with testing.RunTests, with -test.run and
// -test.skip cleared while it runs (they name the caller, not the suite's
// checks), and captures what that prints on os.Stdout. A test function
// should call Run.
func Conform(s Subject) Result {
	ran := false
	test := testing.InternalTest{Name: "Conformance", F: func(t *testing.T) {
		ran = true
		Run(t, s)
	}}
	all := func(pat, str string) (bool, error) { return true, nil }
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil {
			was := f.Value.String()
			_ = f.Value.Set("")
			defer func() { _ = f.Value.Set(was) }()
		}
	}

	r, w, err := os.Pipe()
	if err != nil {
		return Result{Output: "rotationtest: capture the suite's output: " + err.Error()}
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, r)
		close(done)
	}()
	stdout := os.Stdout
	os.Stdout = w
	ok := testing.RunTests(all, []testing.InternalTest{test})
	os.Stdout = stdout
	w.Close()
	<-done
	r.Close()
	if !ran {
		out.WriteString("rotationtest: the suite did not run (with -test.failfast after a failure)\n")
	}
	return Result{OK: ok && ran, Output: out.String()}
}
