package rotation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// masterType reads, in Set, the secret its value's masterarn names, as the
// alternating-users types read their master secret, and says so through
// rotation.SetReader.
type masterType struct {
	fakeType
	seen atomic.Value // the master value Set read
}

func (m *masterType) SetReads(pending rotation.Version) []string {
	var f struct{ MasterARN string }
	_ = json.Unmarshal([]byte(pending.Value), &f)
	return []string{f.MasterARN}
}

func (m *masterType) Set(ctx context.Context, req rotation.SetRequest) error {
	var f struct{ MasterARN string }
	if err := json.Unmarshal([]byte(req.Pending.Value), &f); err != nil {
		return err
	}
	v, err := req.Secrets.Current(ctx, f.MasterARN)
	if err != nil {
		return err
	}
	m.seen.Store(v.Value)
	return nil
}

// deniedBatch refuses BatchGetSecretValue, as AWS does for a role without
// secretsmanager:BatchGetSecretValue, and counts the attempts.
type deniedBatch struct {
	rotation.SecretsManager
	tries atomic.Int32
}

func (d *deniedBatch) BatchGetSecretValue(context.Context, *secretsmanager.BatchGetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	d.tries.Add(1)
	return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: secretsmanager:BatchGetSecretValue"}
}

// TestSetReaderReadsCurrentAndMasterInOneCall: setSecret of a type that
// reads a master secret makes 3 calls (DescribeSecret, the pending version,
// one BatchGetSecretValue for AWSCURRENT and the master), so a rotation
// makes 10; Set sees the master's AWSCURRENT whichever names it is given
// by (name, ARN or partial ARN). A role that may not call
// BatchGetSecretValue still rotates (one GetSecretValue per secret), and
// the instance stops asking after the first refusal.
func TestSetReaderReadsCurrentAndMasterInOneCall(t *testing.T) {
	cred := &masterType{}
	h := newHarness(t, cred)
	masterARN := h.create(t, "batch-master", `{"password":"master-password"}`)
	for _, ref := range []string{"batch-master", masterARN, masterARN[:len(masterARN)-7]} {
		t.Run(ref, func(t *testing.T) {
			arn := h.create(t, "batch-user-"+fmt.Sprint(len(ref)), fmt.Sprintf(`{"password":"initial","masterarn":%q}`, ref))
			if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
				t.Fatalf("rotation %s: %s", r.State, r.Err)
			}
			if got := cred.seen.Load(); got != `{"password":"master-password"}` {
				t.Fatalf("Set read the master secret as %q", got)
			}
			h.evMu.Lock()
			events, calls := h.events[len(h.events)-4:], h.calls[len(h.calls)-4:]
			h.evMu.Unlock()
			sum := 0
			for i, ev := range events {
				sum += total(calls[i])
				if ev.Step == rotation.StepSet && fmt.Sprint(calls[i]) != fmt.Sprint(map[string]int{"BatchGetSecretValue": 1, "DescribeSecret": 1, "GetSecretValue": 1}) {
					t.Errorf("setSecret made %v, want DescribeSecret, GetSecretValue (AWSPENDING) and one BatchGetSecretValue", calls[i])
				}
			}
			if sum != 10 {
				t.Errorf("a rotation made %d Secrets Manager calls, want 10", sum)
			}
		})
	}

	t.Run("BatchDenied", func(t *testing.T) {
		denied := &deniedBatch{SecretsManager: h.puts}
		handler, err := rotation.NewHandler(cred, rotation.Options{Client: denied, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		h.handler = handler
		arn := h.create(t, "batch-denied", fmt.Sprintf(`{"password":"initial","masterarn":%q}`, masterARN))
		for i := 1; i <= 2; i++ {
			cred.seen.Store("")
			if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
				t.Fatalf("rotation %d with BatchGetSecretValue refused: %s: %s", i, r.State, r.Err)
			}
			if got := cred.seen.Load(); got != `{"password":"master-password"}` {
				t.Fatalf("rotation %d: Set read the master secret as %q", i, got)
			}
		}
		if n := denied.tries.Load(); n != 1 {
			t.Fatalf("BatchGetSecretValue was tried %d times in two rotations, want once (the refusal is remembered)", n)
		}
	})
}
