package smlocal

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
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
		n := c.n
		opts := Options{}
		if c.file {
			opts.TrailFile = filepath.Join(b.TempDir(), "trail.jsonl")
		}
		s, err := New(opts)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		arn := func(i int) string {
			return fmt.Sprintf("arn:aws:secretsmanager:us-east-1:123456789012:secret:s%05d-abcdef", i%10_000)
		}
		t0 := time.Now()
		for i := 0; i < n; i++ {
			s.addRecord(&ctRecord{EventName: "GetSecretValue", EventID: newToken(), EventTime: ctTime(t0),
				Resources: []ctResource{{ARN: arn(i), Type: resourceTypeSecret}}}, t0.Add(time.Duration(i)*time.Millisecond))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		name := fmt.Sprintf("%d", n)
		if c.file {
			name += "-on-file"
		}
		perEvent := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
		body, _ := json.Marshal(map[string]any{"LookupAttributes": []map[string]string{{"AttributeKey": "ResourceName", "AttributeValue": arn(7)}}})
		b.Run("record/"+name, func(b *testing.B) {
			b.ReportMetric(perEvent, "heap-B/event")
			for i := 0; i < b.N; i++ {
				s.addRecord(&ctRecord{EventName: "GetSecretValue", EventID: newToken(), EventTime: ctTime(t0),
					Resources: []ctResource{{ARN: arn(i), Type: resourceTypeSecret}}}, t0.Add(time.Hour))
			}
		})
		b.Run("lookup/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := s.lookupEvents(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		s.Close()
	}
}
