package smlocal

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkTrail records a call and looks up one secret's newest page with
// trails of 10,000 and 100,000 events over 10,000 secrets: both stay flat
// as the trail grows (an append and an index; no re-encoding). heap-B/event
// is what the trail holds in memory per event: the record itself, or only
// its index once it is on file.
func BenchmarkTrail(b *testing.B) {
	for _, c := range []struct {
		n    int
		file bool
	}{{10_000, false}, {100_000, false}, {100_000, true}} {
		tr := benchTrailOf(b, c.n, c.file)
		s, n := tr.s, c.n
		name := fmt.Sprintf("%d", n)
		if c.file {
			name += "-on-file"
		}
		t0 := tr.t0
		body, _ := json.Marshal(map[string]any{"LookupAttributes": []map[string]string{{"AttributeKey": "ResourceName", "AttributeValue": benchTrailARN(7)}}})
		b.Run("record/"+name, func(b *testing.B) {
			b.ReportMetric(tr.perEvent, "heap-B/event")
			for i := 0; i < b.N; i++ {
				s.addRecord(&ctRecord{EventName: "GetSecretValue", EventID: newToken(), EventTime: ctTime(t0),
					Resources: []ctResource{{ARN: benchTrailARN(i), Type: resourceTypeSecret}}}, t0.Add(time.Hour))
			}
		})
		b.Run("lookup/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := s.lookupEvents(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchTrailARN(i int) string {
	return fmt.Sprintf("arn:aws:secretsmanager:us-east-1:123456789012:secret:s%05d-abcdef", i%10_000)
}

// benchTrail is a server whose trail holds n events, built once per
// process: `make bench` runs BenchmarkTrail BENCHCOUNT times, and filling
// 100,000 events each time cost minutes without changing what is measured
// (the records the runs add are a few thousand more at most).
type benchTrail struct {
	s        *Server
	t0       time.Time
	perEvent float64
}

var (
	benchTrailsMu  sync.Mutex
	benchTrails    = map[string]*benchTrail{}
	benchTrailDirs []string // removed by TestMain once every run is over
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, tr := range benchTrails {
		_ = tr.s.Close()
	}
	for _, dir := range benchTrailDirs {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

func benchTrailOf(b *testing.B, n int, file bool) *benchTrail {
	b.Helper()
	benchTrailsMu.Lock()
	defer benchTrailsMu.Unlock()
	key := fmt.Sprintf("%d/%v", n, file)
	if tr, ok := benchTrails[key]; ok {
		return tr
	}
	opts := Options{}
	if file {
		dir, err := os.MkdirTemp("", "rotary-trail-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchTrailDirs = append(benchTrailDirs, dir)
		opts.TrailFile = filepath.Join(dir, "trail.jsonl")
	}
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		s.addRecord(&ctRecord{EventName: "GetSecretValue", EventID: newToken(), EventTime: ctTime(t0),
			Resources: []ctResource{{ARN: benchTrailARN(i), Type: resourceTypeSecret}}}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	tr := &benchTrail{s: s, t0: t0, perEvent: float64(after.HeapAlloc-before.HeapAlloc) / float64(n)}
	benchTrails[key] = tr
	return tr
}
