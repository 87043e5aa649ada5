package rotation_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// revokingType records what Revoke was given.
type revokingType struct {
	fakeType
	current, previous string
	calls             int
}

func (r *revokingType) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	r.calls++
	r.current = req.Current.ID
	p, ok, err := req.Previous(ctx)
	if err != nil {
		return err
	}
	if ok {
		r.previous = p.ID
	}
	return nil
}

func TestRevokeStep(t *testing.T) {
	rt := &revokingType{}
	h := newHarness(t, rt)
	arn := h.create(t, "revoke", `{"username":"app","password":"old-password-1"}`)
	if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation: %s", r.Err)
	}
	cur, _ := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	prev, _ := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String("AWSPREVIOUS")})
	revoke := func(token string) error {
		return h.handler.Handle(context.Background(), rotation.Event{Step: rotation.StepRevoke, SecretID: arn, ClientRequestToken: token})
	}
	t.Run("refuses a token that is not AWSCURRENT", func(t *testing.T) {
		if err := revoke(aws.ToString(prev.VersionId)); !errors.Is(err, rotation.ErrRevokeRefused) {
			t.Fatalf("err = %v, want ErrRevokeRefused", err)
		}
	})
	t.Run("revokes with the current version and reads the previous one", func(t *testing.T) {
		if err := revoke(aws.ToString(cur.VersionId)); err != nil {
			t.Fatal(err)
		}
		if rt.current != aws.ToString(cur.VersionId) || rt.previous != aws.ToString(prev.VersionId) {
			t.Fatalf("Revoke got current %s previous %s", rt.current, rt.previous)
		}
	})
	t.Run("refuses while a rotation is unfinished", func(t *testing.T) {
		calls := rt.calls
		rt.set = func(context.Context, rotation.SetRequest) error { return errors.New("db down") }
		if r := h.rotate(t, arn); r.State != smlocal.RotationFailed {
			t.Fatalf("rotation should fail, got %s", r.State)
		}
		if err := revoke(aws.ToString(cur.VersionId)); !errors.Is(err, rotation.ErrRevokeRefused) {
			t.Fatalf("err = %v, want ErrRevokeRefused", err)
		}
		if rt.calls != calls {
			t.Fatal("Revoke ran although the rotation was unfinished")
		}
	})
}

func TestRevokeNeedsTheAbility(t *testing.T) {
	h := newHarness(t, &fakeType{})
	arn := h.create(t, "norevoke", `{"password":"old-password-1"}`)
	cur, _ := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	err := h.handler.Handle(context.Background(), rotation.Event{Step: rotation.StepRevoke, SecretID: arn, ClientRequestToken: aws.ToString(cur.VersionId)})
	if !errors.Is(err, rotation.ErrCannotRevoke) {
		t.Fatalf("err = %v, want ErrCannotRevoke", err)
	}
}
