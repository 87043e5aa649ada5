package rotation_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// decodeCounter is a credential type that decodes every version it is
// given through Version.Decoded and counts the decodes per value.
type decodeCounter struct {
	fakeType
	mu      sync.Mutex
	decodes map[string]int
	errs    []string
}

type counterKey struct{}

func (d *decodeCounter) decode(v rotation.Version) (map[string]any, error) {
	x, err := v.Decoded(counterKey{}, func(value string) (any, error) {
		d.mu.Lock()
		d.decodes[value]++
		d.mu.Unlock()
		var m map[string]any
		if err := json.Unmarshal([]byte(value), &m); err != nil {
			return nil, err
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return x.(map[string]any), nil
}

func (d *decodeCounter) count(v rotation.Version) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.decodes[v.Value]
}

func (d *decodeCounter) Validate(_ context.Context, v rotation.Version) error {
	_, err := d.decode(v)
	return err
}

// again decodes versions that Validate decoded earlier in the step
// (validated) and others, twice each, and notes any decoded a second time.
func (d *decodeCounter) again(step string, validated []rotation.Version, others ...rotation.Version) error {
	for i, v := range append(validated, others...) {
		before := d.count(v)
		for range 2 {
			if _, err := d.decode(v); err != nil {
				return err
			}
			if i >= len(validated) && d.count(v) == before+1 {
				before++ // the step's first decode of a version Validate did not see
			}
		}
		if after := d.count(v); after != before || after == 0 {
			d.mu.Lock()
			d.errs = append(d.errs, step+": version "+v.ID+" decoded again in the same step")
			d.mu.Unlock()
		}
	}
	return nil
}

// setSecret validates AWSPENDING only; testSecret validates AWSPENDING.
func (d *decodeCounter) Set(ctx context.Context, req rotation.SetRequest) error {
	return d.again(rotation.StepSet, []rotation.Version{req.Pending}, req.Current)
}

func (d *decodeCounter) Test(ctx context.Context, req rotation.TestRequest) error {
	return d.again(rotation.StepTest, []rotation.Version{req.Pending})
}

// TestEachVersionDecodedOncePerStep: what Validate decoded, Set and Test
// get back from Version.Decoded without decoding again, so a credential
// type parses each version once per step.
func TestEachVersionDecodedOncePerStep(t *testing.T) {
	d := &decodeCounter{decodes: map[string]int{}}
	h := newHarness(t, d)
	arn := h.create(t, "decoded", `{"password":"initial-password"}`)
	for i := 1; i <= 2; i++ {
		if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s %s", i, r.State, r.Err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.errs {
		t.Error(e)
	}
	if len(d.decodes) < 3 {
		t.Errorf("decoded %d distinct values over two rotations, want 3 (initial and two pending)", len(d.decodes))
	}
	// A value read in a later step is decoded again: the cache lives for one
	// step, so a Lambda instance keeps no secret beyond the event.
	for _, n := range d.decodes {
		if n < 2 {
			t.Errorf("a value was decoded %d times over two rotations; each is read in at least two steps", n)
		}
	}
}

func TestDecodedWithoutEngine(t *testing.T) {
	calls := 0
	dec := func(string) (any, error) { calls++; return nil, errors.New("bad") }
	v := rotation.Version{ID: "v1", Value: "{}"}
	_, _ = v.Decoded(counterKey{}, dec)
	_, _ = v.Decoded(counterKey{}, dec)
	if calls != 2 {
		t.Errorf("a hand-built Version decoded %d times for two calls, want 2 (no cache)", calls)
	}
	calls = 0
	nv := rotation.NewVersion("v1", "{}")
	cp := nv
	_, err1 := nv.Decoded(counterKey{}, dec)
	_, err2 := cp.Decoded(counterKey{}, dec)
	if calls != 1 || err1 == nil || err2 == nil {
		t.Errorf("NewVersion and its copy: %d decodes (want 1), errors %v and %v (want the cached error twice)", calls, err1, err2)
	}
	if _, _ = nv.Decoded(struct{ other int }{}, dec); calls != 2 {
		t.Errorf("another key shared the first key's result")
	}
}
