package rotationtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// Run runs the conformance suite against a credential type. Every success is
// proven with the subject's Check on AWSCURRENT; every failure that happens
// before the downstream change with Check on the value that was current.
func Run(t *testing.T, s Subject) {
	t.Helper()
	switch {
	case s.Credential == nil, s.NewSecret == nil, s.Check == nil, s.Corrupt == nil:
		t.Fatal("rotationtest: Subject needs Credential, NewSecret, Check and Corrupt")
	}
	e := NewEnv(t, s)
	seen := valuesSeen{public: rotation.PublicFieldsOf(s.Credential)}

	t.Run("CheckRefusesACorruptValue", func(t *testing.T) {
		_, value := e.NewSecret(t)
		e.mustBeValid(t, "the initial value", value)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Check(ctx, s.Corrupt(value)); err == nil {
			t.Fatal("Check accepted a corrupted value: it cannot prove anything")
		}
	})

	t.Run("FullRotation", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatalf("rotation failed: %v", err)
		}
		e.mustEndRotated(t, arn, token, old)
		seen.addCurrent(e, t, arn)
		// A second rotation starts from the first one's result.
		token2, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatalf("second rotation failed: %v", err)
		}
		_, mid, _ := e.Value(t, arn, rotation.LabelPrevious)
		e.mustEndRotated(t, arn, token2, mid)
		seen.addCurrent(e, t, arn)
	})

	t.Run("EveryStepTwice", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		e.Inject(func(ev smlocal.Event, run func() error) error {
			if err := run(); err != nil {
				return err
			}
			if err := run(); err != nil {
				return fmt.Errorf("second run of %s: %w", ev.Step, err)
			}
			return nil
		})
		defer e.Inject(nil)
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatalf("rotation with every step run twice failed: %v", err)
		}
		e.mustEndRotated(t, arn, token, old)
		seen.addCurrent(e, t, arn)
	})

	for _, step := range steps {
		for _, after := range []bool{false, true} {
			when := "Before"
			if after {
				when = "After"
			}
			t.Run("FailureRetried/"+when+"/"+step, func(t *testing.T) {
				arn, old := e.NewSecret(t)
				seen.add(old)
				var once sync.Once
				e.Inject(func(ev smlocal.Event, run func() error) error {
					fail := false
					if ev.Step == step {
						once.Do(func() { fail = true })
					}
					if fail && !after {
						return errInjected
					}
					err := run()
					if fail && err == nil {
						return errInjected
					}
					return err
				})
				defer e.Inject(nil)
				token, err := e.Rotate(t, arn)
				if err != nil {
					t.Fatalf("rotation did not recover from one failure %s %s: %v", strings.ToLower(when), step, err)
				}
				e.mustEndRotated(t, arn, token, old)
				seen.addCurrent(e, t, arn)
			})
		}
	}

	for _, step := range steps {
		t.Run("PersistentFailureThenRetryWithSameToken/"+step, func(t *testing.T) {
			arn, old := e.NewSecret(t)
			seen.add(old)
			e.Inject(func(ev smlocal.Event, run func() error) error {
				if ev.Step == step {
					return errInjected
				}
				return run()
			})
			_, err := e.Rotate(t, arn)
			e.Inject(nil)
			if err == nil {
				t.Fatal("rotation succeeded although every attempt failed")
			}
			id, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
			if cur != old {
				t.Fatalf("AWSCURRENT changed after a failed rotation (now %s)", Fingerprint(cur))
			}
			if step == rotation.StepCreate || step == rotation.StepSet {
				// Nothing downstream changed yet: the old credential works.
				e.mustBeValid(t, "the credential current before the failed rotation", old)
			}
			pending := ""
			for v, labels := range e.Versions(t, arn) {
				if slices.Contains(labels, rotation.LabelPending) {
					pending = v
				}
			}
			if pending == "" || pending == id {
				t.Fatalf("a failed rotation must leave AWSPENDING on its own version (found %q)", pending)
			}
			// A second RotateSecret is refused while the first is unfinished.
			_, rerr := e.Client.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String(arn)})
			if rerr == nil || !strings.Contains(rerr.Error(), "A previous rotation isn't complete") {
				t.Fatalf("RotateSecret during an unfinished rotation: err = %v", rerr)
			}
			// Secrets Manager retries the whole rotation with the same token.
			for _, st := range steps {
				if err := e.Step(arn, st, pending); err != nil {
					t.Fatalf("retry of %s with the same token: %v", st, err)
				}
			}
			if err := e.removePending(arn, pending); err != nil {
				t.Fatal(err)
			}
			e.mustEndRotated(t, arn, pending, old)
			seen.addCurrent(e, t, arn)
		})
	}

	t.Run("TokenAlreadyCurrent", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatal(err)
		}
		before := e.Versions(t, arn)
		_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
		for _, st := range steps {
			if err := e.Step(arn, st, token); err != nil {
				t.Fatalf("%s with a token that is already AWSCURRENT must succeed: %v", st, err)
			}
		}
		if after := e.Versions(t, arn); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("labels changed: %v -> %v", before, after)
		}
		e.mustBeValid(t, "AWSCURRENT", cur)
	})

	t.Run("EventChecks", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatal(err)
		}
		prevID, _, _ := e.Value(t, arn, rotation.LabelPrevious)
		cases := []struct {
			name, step, token string
			want              error
		}{
			{"WrongToken", rotation.StepCreate, "00000000-0000-4000-8000-00000000dead", rotation.ErrUnknownToken},
			{"WrongTokenSet", rotation.StepSet, "00000000-0000-4000-8000-00000000dead", rotation.ErrUnknownToken},
			{"WrongTokenTest", rotation.StepTest, "00000000-0000-4000-8000-00000000dead", rotation.ErrUnknownToken},
			{"WrongTokenFinish", rotation.StepFinish, "00000000-0000-4000-8000-00000000dead", rotation.ErrUnknownToken},
			{"TokenNotPending", rotation.StepSet, prevID, rotation.ErrNotPending},
			{"UnknownStep", "deleteSecret", token, rotation.ErrUnknownStep},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := e.Step(arn, c.step, c.token)
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
				for _, part := range []string{c.step, arn, c.token} {
					if !strings.Contains(err.Error(), part) {
						t.Fatalf("error %q does not name %q", err, part)
					}
				}
			})
		}
		_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
		e.mustBeValid(t, "AWSCURRENT after refused events", cur)
	})

	t.Run("RotationDisabled", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		e.Inject(func(ev smlocal.Event, run func() error) error { return errInjected })
		_, err := e.Rotate(t, arn)
		e.Inject(nil)
		if err == nil {
			t.Fatal("rotation succeeded although every step failed")
		}
		out, err := e.Client.CancelRotateSecret(context.Background(), &secretsmanager.CancelRotateSecretInput{SecretId: aws.String(arn)})
		if err != nil {
			t.Fatalf("CancelRotateSecret: %v", err)
		}
		pending := aws.ToString(out.VersionId)
		for _, st := range steps {
			if err := e.Step(arn, st, pending); !errors.Is(err, rotation.ErrRotationDisabled) {
				t.Fatalf("%s with rotation disabled: err = %v, want ErrRotationDisabled", st, err)
			}
		}
		_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
		if cur != old {
			t.Fatal("AWSCURRENT changed while rotation was disabled")
		}
		e.mustBeValid(t, "AWSCURRENT with rotation disabled", old)
	})

	runAbilities(t, e, s, &seen)
	runSetFault(t, e, s, &seen)
	runRevoke(t, e, s, &seen)
	if s.Master == nil && !s.MasterNotRDS {
		t.Run("MasterHookGiven", func(t *testing.T) {
			_, value := e.NewSecret(t)
			var fields map[string]json.RawMessage
			if json.Unmarshal([]byte(value), &fields) == nil && fields["masterarn"] != nil {
				t.Fatal("the type's secret names a master secret (masterarn), but Subject.Master is nil: set it, so the RDS-managed-master cases run for this type")
			}
		})
	}
	runMaster(t, s, &seen)

	t.Run("NoSecretInLogs", func(t *testing.T) {
		logs := e.Logs()
		if !strings.Contains(logs, `"step":"finishSecret"`) {
			t.Fatal("the handler logged no finishSecret step: the leak check would prove nothing")
		}
		for _, v := range seen.all() {
			if Leaks(logs, v) {
				t.Fatalf("a secret value (%s) appears in the handler's logs", Fingerprint(v))
			}
		}
	})
}

// removePending does what Secrets Manager does after a successful rotation.
func (e *Env) removePending(arn, version string) error {
	_, err := e.Client.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(arn), VersionStage: aws.String(rotation.LabelPending), RemoveFromVersionId: aws.String(version),
	})
	if err != nil {
		return fmt.Errorf("remove AWSPENDING: %w", err)
	}
	return nil
}

// valuesSeen collects the secret strings of every value the suite saw, for
// the leak check: every string but the type's public fields' values.
type valuesSeen struct {
	mu     sync.Mutex
	public []string
	v      []string
}

func (s *valuesSeen) add(value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v = append(s.v, rotation.SecretStrings(value, s.public...)...)
}

func (s *valuesSeen) addCurrent(e *Env, t *testing.T, arn string) {
	t.Helper()
	if _, v, ok := e.Value(t, arn, rotation.LabelCurrent); ok {
		s.add(v)
	}
}

func (s *valuesSeen) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.v)
}
