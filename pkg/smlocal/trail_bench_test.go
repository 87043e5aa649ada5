package smlocal

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkTrail records a call and looks up one secret's newest page with
// trails of 10,000 and 100,000 events over 10,000 secrets: both stay flat
// as the trail grows (an append and an index; no re-encoding).
func BenchmarkTrail(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		s, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		arn := func(i int) string {
			return fmt.Sprintf("arn:aws:secretsmanager:us-east-1:123456789012:secret:s%05d-abcdef", i%10_000)
		}
		t0 := time.Now()
		for i := 0; i < n; i++ {
			s.addRecord(&ctRecord{EventName: "GetSecretValue", EventID: newToken(), EventTime: ctTime(t0),
				Resources: []ctResource{{ARN: arn(i), Type: resourceTypeSecret}}}, t0.Add(time.Duration(i)*time.Millisecond))
		}
		body, _ := json.Marshal(map[string]any{"LookupAttributes": []map[string]string{{"AttributeKey": "ResourceName", "AttributeValue": arn(7)}}})
		b.Run(fmt.Sprintf("record/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s.addRecord(&ctRecord{EventName: "GetSecretValue", EventID: newToken(), EventTime: ctTime(t0),
					Resources: []ctResource{{ARN: arn(i), Type: resourceTypeSecret}}}, t0.Add(time.Hour))
			}
		})
		b.Run(fmt.Sprintf("lookup/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := s.lookupEvents(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		s.Close()
	}
}
