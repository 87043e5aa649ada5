package rotationtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// Revoke runs the operator's revokeSecret step with token, as `rotary
// revoke` does after its rotation with the new AWSCURRENT version.
func (e *Env) Revoke(arn, token string) error {
	return e.Step(arn, rotation.StepRevoke, token)
}

// mustRevoke revokes with the AWSCURRENT token and proves that AWSCURRENT
// did not move and still works downstream.
func (e *Env) mustRevoke(t *testing.T, arn, what string, seen *valuesSeen) {
	t.Helper()
	id, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
	if err := e.Revoke(arn, id); err != nil {
		e.mustNotQuote(t, err, seen)
		t.Fatalf("%s: %v", what, err)
	}
	if nid, now, _ := e.Value(t, arn, rotation.LabelCurrent); nid != id || now != cur {
		t.Fatalf("%s moved or changed AWSCURRENT (version %s, now %s)", what, id, nid)
	}
	e.mustBeValid(t, "AWSCURRENT after "+what, cur)
}

// mustNotQuote fails the test if err's text holds a secret string the suite saw.
func (e *Env) mustNotQuote(t *testing.T, err error, seen *valuesSeen) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range seen.all() {
		if Leaks(err.Error(), v) {
			t.Fatalf("an error quotes a secret value (%s)", Fingerprint(v))
		}
	}
}

// working returns those of values that Check accepts now.
func (e *Env) working(values ...string) []string {
	var ok []string
	for _, v := range values {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if e.subject.Check(ctx, v) == nil {
			ok = append(ok, v)
		}
		cancel()
	}
	return ok
}

// runRevoke checks the Revoker ability, proven downstream with Check:
// revoking keeps AWSCURRENT working and makes every older value of the
// secret refused, twice in a row and after any number of rotations, and
// is refused, changing nothing, while a rotation is unfinished or with a
// token that is not AWSCURRENT.
func runRevoke(t *testing.T, e *Env, s Subject, seen *valuesSeen) {
	if _, ok := s.Credential.(rotation.Revoker); !ok {
		return
	}
	_, single := s.Credential.(rotation.Restorer)

	t.Run("Revoke/AfterEachRotation", func(t *testing.T) {
		arn, cur := e.NewSecret(t)
		seen.add(cur)
		var older []string // the values that were AWSCURRENT before cur
		for rotations := 0; rotations <= 3; rotations++ {
			if rotations > 0 {
				token, err := e.Rotate(t, arn)
				if err != nil {
					t.Fatalf("rotation %d (after a revoke): %v", rotations, err)
				}
				e.mustEndRotated(t, arn, token, cur)
				older = append(older, cur)
				_, cur, _ = e.Value(t, arn, rotation.LabelCurrent)
				seen.add(cur)
				if !single {
					// More than one credential works at a time: AWSPREVIOUS
					// still works, and only the revoke may end that.
					e.mustBeValid(t, "AWSPREVIOUS before the revoke", older[len(older)-1])
				}
			}
			for i := 1; i <= 2; i++ {
				what := fmt.Sprintf("revoke %d after %d rotations", i, rotations)
				e.mustRevoke(t, arn, what, seen)
				if s.NoDownstream {
					continue
				}
				for j, old := range older {
					e.mustBeRefused(t, fmt.Sprintf("the value current before rotation %d, after %s", j+1, what), old)
				}
			}
		}
	})

	t.Run("Revoke/RefusedChangingNothing", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatal(err)
		}
		seen.addCurrent(e, t, arn)
		curID, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
		prevID, _, _ := e.Value(t, arn, rotation.LabelPrevious)
		// What a revoke would invalidate and still works (for alternating
		// users, AWSPREVIOUS) must keep working when the revoke is refused.
		keep := e.working(old, cur)
		mustChangeNothing := func(t *testing.T, err error, what string, before map[string][]string) {
			t.Helper()
			// Before any message prints the error: it must quote no secret.
			e.mustNotQuote(t, err, seen)
			if !errors.Is(err, rotation.ErrRevokeRefused) {
				t.Fatalf("revoke %s: err = %v, want ErrRevokeRefused", what, err)
			}
			if after := e.Versions(t, arn); !sameStages(before, after) {
				t.Fatalf("a revoke refused %s changed the labels: %v -> %v", what, before, after)
			}
			if id, now, _ := e.Value(t, arn, rotation.LabelCurrent); id != curID || now != cur {
				t.Fatalf("a revoke refused %s moved AWSCURRENT to version %s", what, id)
			}
			for _, v := range keep {
				e.mustBeValid(t, "a value that worked before the revoke refused "+what, v)
			}
		}

		before := e.Versions(t, arn)
		mustChangeNothing(t, e.Revoke(arn, prevID), "with the AWSPREVIOUS token", before)

		// A rotation that fails at setSecret, before any change downstream,
		// and stays unfinished.
		e.Inject(func(ev smlocal.Event, run func() error) error {
			if ev.Step == rotation.StepSet {
				return errInjected
			}
			return run()
		})
		_, err := e.Rotate(t, arn)
		e.Inject(nil)
		if err == nil {
			t.Fatal("the rotation succeeded although setSecret always failed")
		}
		pending := labeled(e.Versions(t, arn), rotation.LabelPending)
		if pending == "" || pending == curID {
			t.Fatalf("the failed rotation left AWSPENDING on %q, want a version of its own", pending)
		}
		_, pendValue, _ := pendingValue(t, e, arn, pending)
		seen.add(pendValue)
		before = e.Versions(t, arn)
		err = e.Revoke(arn, curID)
		mustChangeNothing(t, err, "while a rotation is unfinished", before)
		if !strings.Contains(err.Error(), pending) {
			t.Fatalf("the refusal does not name the unfinished rotation's version %s: %v", pending, err)
		}

		// Once the rotation is finished, the revoke goes ahead.
		for _, st := range steps {
			if err := e.Step(arn, st, pending); err != nil {
				t.Fatalf("finish the rotation: %s: %v", st, err)
			}
		}
		if err := e.removePending(arn, pending); err != nil {
			t.Fatal(err)
		}
		e.mustEndRotated(t, arn, pending, cur)
		e.mustRevoke(t, arn, "revoke after the rotation was finished", seen)
		if !s.NoDownstream {
			e.mustBeRefused(t, "AWSPREVIOUS after the revoke", cur)
			e.mustBeRefused(t, "the initial value after the revoke", old)
		}
	})

	if s.NoDownstream {
		return
	}
	t.Run("Revoke/RefusedWhenCurrentIsRefused", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatal(err)
		}
		_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
		seen.add(cur)
		keep := e.working(old, cur)
		// Someone stores as AWSCURRENT a value the downstream refuses:
		// revoking now would leave nothing that works.
		bad := s.Corrupt(cur)
		seen.add(bad)
		if _, err := e.Client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(bad)}); err != nil {
			t.Fatal(err)
		}
		badID, _, _ := e.Value(t, arn, rotation.LabelCurrent)
		before := e.Versions(t, arn)
		err := e.Revoke(arn, badID)
		e.mustNotQuote(t, err, seen)
		if err == nil || !strings.Contains(err.Error(), rotation.LabelCurrent) {
			t.Fatalf("revoke with an AWSCURRENT the downstream refuses: err = %v, want an error that names AWSCURRENT", err)
		}
		if after := e.Versions(t, arn); !sameStages(before, after) {
			t.Fatalf("a revoke refused for an AWSCURRENT that does not work changed the labels: %v -> %v", before, after)
		}
		if id, now, _ := e.Value(t, arn, rotation.LabelCurrent); id != badID || now != bad {
			t.Fatalf("a revoke refused for an AWSCURRENT that does not work moved AWSCURRENT to version %s", id)
		}
		for _, v := range keep {
			e.mustBeValid(t, "a value that worked before the refused revoke", v)
		}
	})
}

// sameStages reports whether two DescribeSecret label maps are equal,
// whatever the order of each version's labels.
func sameStages(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for id, s := range a {
		if !slices.Equal(slices.Sorted(slices.Values(s)), slices.Sorted(slices.Values(b[id]))) {
			return false
		}
	}
	return true
}
