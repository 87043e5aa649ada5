// Command benchreport turns `go test -bench` output (several runs of each
// benchmark, -count N) into docs/benchmarks.md: one table per figure with
// the minimum, median and maximum of every metric over the runs, the ratio
// to the figure's baseline measured in the same run (a row whose name
// starts with "baseline" or "Baseline"), and the change against the
// previous report's medians, which it reads back from the data block at
// the end of the file it replaces. `make bench` runs it.
//
//	go test -run '^$' -bench . -count 5 ./... | go run ./internal/benchreport -out docs/benchmarks.md
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// result is one benchmark's metrics over the runs: metric unit -> values.
type result struct {
	pkg, name string
	metrics   map[string][]float64
	order     []string
}

var (
	benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	pkgLine   = regexp.MustCompile(`^pkg: (\S+)`)
)

const dataStart, dataEnd = "<!-- benchreport data", "-->"

// baselines pairs a figure with the figure of the same package that is its
// baseline, measured in the same run. A figure whose rows include one named
// baseline... is read against that row instead.
var baselines = map[string]string{
	"BenchmarkRotation":                   "BenchmarkBaselineGetSecretValue",
	"BenchmarkRandomSecretRotation":       "BenchmarkBaselineInvoke",
	"BenchmarkPostgresSingleUserRotation": "BenchmarkBaselinePostgresLogin",
}

func main() {
	out := flag.String("out", "docs/benchmarks.md", "the report to write (its previous figures are read first)")
	echo := flag.Bool("echo", true, "copy the input to standard output as it is read")
	flag.Parse()
	results, order, err := parse(os.Stdin, *echo)
	if err != nil {
		fail(err)
	}
	if len(results) == 0 {
		fail(fmt.Errorf("no benchmark results in the input"))
	}
	prev := previous(*out)
	report := render(results, order, prev)
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s (%d benchmarks)\n", *out, len(results))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}

func parse(r io.Reader, echo bool) (map[string]*result, []string, error) {
	results := map[string]*result{}
	var order []string
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if echo {
			fmt.Println(line)
		}
		if m := pkgLine.FindStringSubmatch(line); m != nil {
			pkg = m[1]
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := pkg + " " + m[1]
		res := results[key]
		if res == nil {
			res = &result{pkg: pkg, name: m[1], metrics: map[string][]float64{}}
			results[key] = res
			order = append(order, key)
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if unit == "ns/op" && v == 0 {
				continue // a benchmark that reports its own figures instead
			}
			if _, ok := res.metrics[unit]; !ok {
				res.order = append(res.order, unit)
			}
			res.metrics[unit] = append(res.metrics[unit], v)
		}
	}
	return results, order, sc.Err()
}

// previous reads the medians of the report at path: key -> unit -> median.
func previous(path string) map[string]map[string]float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndex(s, dataStart)
	if i < 0 {
		return nil
	}
	rest := s[i+len(dataStart):]
	j := strings.Index(rest, dataEnd)
	if j < 0 {
		return nil
	}
	var prev map[string]map[string]float64
	if json.Unmarshal([]byte(rest[:j]), &prev) != nil {
		return nil
	}
	return prev
}

func stats(v []float64) (lo, med, hi float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

func num(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// unitName makes ns/op readable.
func unitName(u string) string {
	if u == "ns/op" {
		return "time/op (ns)"
	}
	return u
}

// figure is the benchmark's top-level name: its sub-benchmarks are the
// rows of one table.
func figure(name string) (fig, row string) {
	if i := strings.Index(name, "/"); i >= 0 {
		return name[:i], name[i+1:]
	}
	return name, "-"
}

func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
				mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	osName := runtime.GOOS
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s memory, %s, %s %s/%s", runtime.NumCPU(), cpu, mem, osName, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func render(results map[string]*result, order []string, prev map[string]map[string]float64) string {
	var b strings.Builder
	runs := 0
	for _, r := range results {
		for _, v := range r.metrics {
			runs = max(runs, len(v))
		}
	}
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`internal/benchreport`); do not edit by hand. Each figure is the minimum, median and maximum over %d runs. ", runs)
	fmt.Fprintf(&b, "This machine is shared and noisy: read a figure against its baseline, measured in the same run (the *x baseline* column, median over median), and against the previous report (*x previous*, median over the previous median: below 1 is faster or smaller). Absolute times are reported, never asserted.\n\n")
	fmt.Fprintf(&b, "- date: %s\n- commit: %s\n- machine: %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), commit(), machine())
	fmt.Fprintf(&b, "Where the figures come from, and the budgets `make test` asserts, are in [performance.md](performance.md).\n")

	// Group rows into figures, in the order they ran.
	type fig struct {
		pkg, name string
		keys      []string
	}
	var figs []*fig
	byName := map[string]*fig{}
	for _, k := range order {
		r := results[k]
		f, _ := figure(r.name)
		id := r.pkg + " " + f
		if byName[id] == nil {
			byName[id] = &fig{pkg: r.pkg, name: f}
			figs = append(figs, byName[id])
		}
		byName[id].keys = append(byName[id].keys, k)
	}
	data := map[string]map[string]float64{}
	for _, f := range figs {
		short := f.pkg[strings.LastIndex(f.pkg, "/")+1:]
		fmt.Fprintf(&b, "\n## %s: %s\n\n`%s`", short, f.name, f.pkg)
		// The baseline row of the figure, or the figure's baseline figure.
		var base *result
		for _, k := range f.keys {
			if _, row := figure(results[k].name); strings.HasPrefix(strings.ToLower(row), "baseline") {
				base = results[k]
			}
		}
		if bf, ok := baselines[f.name]; ok && base == nil {
			base = results[f.pkg+" "+bf]
		}
		if base != nil {
			fmt.Fprintf(&b, "; baseline: `%s`", base.name)
		}
		fmt.Fprintf(&b, "\n\n")
		fmt.Fprintf(&b, "| benchmark | metric | min | median | max | x baseline | x previous |\n|---|---|---|---|---|---|---|\n")
		for _, k := range f.keys {
			r := results[k]
			_, row := figure(r.name)
			data[k] = map[string]float64{}
			for _, u := range r.order {
				lo, med, hi := stats(r.metrics[u])
				data[k][u] = med
				xb, xp := "", ""
				if base != nil && base != r {
					if bv, ok := base.metrics[u]; ok {
						if _, bm, _ := stats(bv); bm != 0 {
							xb = fmt.Sprintf("%.2f", med/bm)
						}
					}
				}
				if p, ok := prev[k][u]; ok && p != 0 {
					xp = fmt.Sprintf("%.2f", med/p)
				}
				label := row
				if row == "-" {
					label = r.name
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", label, unitName(u), num(lo), num(med), num(hi), xb, xp)
			}
		}
	}
	// Keep previous figures that did not run this time, so none is lost.
	for k, v := range prev {
		if _, ok := data[k]; !ok {
			data[k] = v
		}
	}
	js, _ := json.MarshalIndent(data, "", " ")
	fmt.Fprintf(&b, "\n%s\n%s\n%s\n", dataStart, js, dataEnd)
	return b.String()
}
