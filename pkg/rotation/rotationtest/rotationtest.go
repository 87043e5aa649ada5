// Package rotationtest is the conformance suite every credential type runs:
// it drives the rotation engine with the type against a local Secrets
// Manager (pkg/smlocal) through the real SDK client, and proves each outcome
// with a check the type supplies (for a database, a login).
package rotationtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// Subject is a credential type under test.
type Subject struct {
	// Credential is the credential type.
	Credential rotation.Credential
	// NewSecret prepares what one rotation needs downstream (for example a
	// fresh database user with a unique name, dropped in t.Cleanup) and
	// returns the initial AWSCURRENT value. It may create other secrets
	// (a master secret) in the local Secrets Manager through sm.
	NewSecret func(t *testing.T, sm *secretsmanager.Client) string
	// Check proves that a secret value is valid downstream: for a database,
	// log in with it and run a query.
	Check func(ctx context.Context, value string) error
	// Corrupt returns a copy of value that Check must refuse (a wrong
	// password, say), proving that Check can fail.
	Corrupt func(value string) string
	// Refused, when set, tells whether an error of Check is the downstream
	// refusing the credential (a wrong password, a login not allowed)
	// rather than failing to answer (network, TLS, a value that does not
	// parse). Every check that a value must be refused uses it, so that an
	// unreachable server cannot pass for a refusal; nil means any error of
	// Check counts as a refusal.
	Refused func(err error) bool
	// NoDownstream says that nothing but the secret holds the type's values
	// (random API keys, which only their consumers keep): Check can judge a
	// value only by its form, so the suite cannot expect an older value to
	// be refused after a revoke, and proves instead that AWSCURRENT keeps
	// working and nothing else changes.
	NoDownstream bool
	// Master, for an alternating-users type whose secret names a master
	// (admin) secret in masterarn, lets the suite choose the master
	// secret's form: with it, Run also rotates (and, for a Revoker,
	// revokes) with a master secret that RDS manages. nil skips those cases.
	Master *Master
	// MasterNotRDS says that the type's master secret (masterarn) can never
	// be one RDS manages (a Redis admin user), so Master is nil on purpose
	// and the RDS-managed-master cases do not apply.
	MasterNotRDS bool
	// Passwords is the engine's password policy; nil means the default.
	Passwords *password.Policy
}

// Master is the master-secret hook of Subject, for types whose secret
// names a master secret that acts for the rotated users (masterarn).
//
// Run uses it to rotate with a master secret like the one RDS manages for
// a database: only username and password, with no host, and a tag
// aws:rds:primaryDBInstanceArn (or aws:rds:primaryDBClusterArn) naming the
// instance (cluster) that RDS's API, a local one (internal/rdslocal), says
// listens at Host:Port. The type must find the server through the RDS API
// client WithRDS gives it, and must refuse, before any change downstream,
// a master whose instance is elsewhere (the error saying "same database
// server") or unknown (the error passing on RDS's DBInstanceNotFound).
type Master struct {
	// NewSecret is Subject.NewSecret with the master secret left to the
	// suite: it prepares the users downstream, among them a master user
	// with the privileges the type's documentation asks for, calls store
	// with the master's user name and password, and returns the initial
	// AWSCURRENT value with masterarn set to the ARN store returned.
	NewSecret func(t *testing.T, store func(user, password string) (masterARN string)) string
	// Engine and ClusterEngine are the RDS engine names of an instance and
	// of an Aurora cluster of the type ("postgres", "aurora-postgresql").
	Engine, ClusterEngine string
	// Host and Port are where the database server listens, which the RDS
	// API reports as the instance's and the cluster's endpoint.
	Host string
	Port int
	// WithRDS returns the credential type, configured as Subject.Credential
	// but finding the host of an RDS-managed master secret through client.
	WithRDS func(client *rds.Client) rotation.Credential
}

// FunctionARN is the rotation function ARN the suite gives RotateSecret.
const FunctionARN = "arn:aws:lambda:us-east-1:123456789012:function:rotary-conformance"

var steps = []string{rotation.StepCreate, rotation.StepSet, rotation.StepTest, rotation.StepFinish}

// Env is one local Secrets Manager with the subject's handler behind it.
type Env struct {
	T       *testing.T
	Server  *smlocal.Server
	Client  *secretsmanager.Client
	Handler *rotation.Handler
	subject Subject
	logs    *syncBuffer

	mu       sync.Mutex
	inject   func(ev smlocal.Event, run func() error) error // nil: run as is
	override *rotation.Handler                              // nil: Handler
}

// NewEnv starts a local Secrets Manager whose rotations run the subject's
// handler in process. Everything stops in t.Cleanup.
func NewEnv(t *testing.T, s Subject) *Env {
	t.Helper()
	e := &Env{T: t, subject: s, logs: &syncBuffer{}}
	srv, err := smlocal.New(smlocal.Options{
		Invoker: smlocal.InvokerFunc(e.invoke),
		Retry:   smlocal.RetryPolicy{Attempts: 3},
	})
	if err != nil {
		t.Fatalf("start local Secrets Manager: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	e.Server = srv
	e.Client = smlocal.NewClient(hs.URL)
	h, err := rotation.NewHandler(s.Credential, rotation.Options{
		Client:    e.Client,
		Passwords: s.Passwords,
		Logger:    slog.New(slog.NewJSONHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatalf("build handler: %v", err)
	}
	e.Handler = h
	return e
}

func (e *Env) invoke(ctx context.Context, _ string, ev smlocal.Event) error {
	e.mu.Lock()
	inj, h := e.inject, e.override
	e.mu.Unlock()
	if h == nil {
		h = e.Handler
	}
	run := func() error { return h.Handle(ctx, toEvent(ev)) }
	if inj != nil {
		return inj(ev, run)
	}
	return run()
}

func toEvent(ev smlocal.Event) rotation.Event {
	return rotation.Event{Step: ev.Step, SecretID: ev.SecretId, ClientRequestToken: ev.ClientRequestToken, RotationToken: ev.RotationToken}
}

// Inject replaces how the local Secrets Manager invokes the handler; nil restores it.
func (e *Env) Inject(f func(ev smlocal.Event, run func() error) error) {
	e.mu.Lock()
	e.inject = f
	e.mu.Unlock()
}

// useHandler makes the local Secrets Manager's rotations run h; nil
// restores the subject's handler.
func (e *Env) useHandler(h *rotation.Handler) {
	e.mu.Lock()
	e.override = h
	e.mu.Unlock()
}

// Logs returns what the handler has logged so far.
func (e *Env) Logs() string { return e.logs.String() }

// NewSecret creates a secret holding the subject's initial value and
// returns its ARN and that value.
func (e *Env) NewSecret(t *testing.T) (arn, value string) {
	t.Helper()
	value = e.subject.NewSecret(t, e.Client)
	out, err := e.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name:         aws.String(fmt.Sprintf("conformance/%s-%d", sanitize(t.Name()), time.Now().UnixNano())),
		SecretString: aws.String(value),
	})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	return aws.ToString(out.ARN), value
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, s)
}

// Rotate starts a rotation with RotateSecret and waits for it to end.
func (e *Env) Rotate(t *testing.T, arn string) (token string, err error) {
	t.Helper()
	ctx := context.Background()
	out, err := e.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId:          aws.String(arn),
		RotationLambdaARN: aws.String(FunctionARN),
	})
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := e.Server.WaitRotation(wctx, arn)
	if err != nil {
		t.Fatalf("wait for rotation: %v", err)
	}
	if r.State != smlocal.RotationSucceeded {
		if r.Err == "" {
			r.Err = string(r.State)
		}
		return aws.ToString(out.VersionId), errors.New(r.Err)
	}
	return aws.ToString(out.VersionId), nil
}

// Versions returns the secret's labeled versions: version ID to labels.
func (e *Env) Versions(t *testing.T, arn string) map[string][]string {
	t.Helper()
	out, err := e.Client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatalf("describe secret: %v", err)
	}
	return out.VersionIdsToStages
}

// Value reads the value under a label; ok is false when there is none.
func (e *Env) Value(t *testing.T, arn, label string) (id, value string, ok bool) {
	t.Helper()
	out, err := e.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(label)})
	if err != nil {
		return "", "", false
	}
	return aws.ToString(out.VersionId), aws.ToString(out.SecretString), true
}

// Step invokes one step of the handler directly, as Secrets Manager would.
func (e *Env) Step(arn, step, token string) error {
	return e.Handler.Handle(context.Background(), rotation.Event{Step: step, SecretID: arn, ClientRequestToken: token})
}

// Fingerprint is a short, non-reversible name for a secret value, safe to print.
func Fingerprint(value string) string {
	sum := sha256.Sum256([]byte(value))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// mustBeRefused proves that the downstream refuses value: Check fails,
// and when the subject says which errors are refusals, with one of those.
func (e *Env) mustBeRefused(t *testing.T, what, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := e.subject.Check(ctx, value)
	if err == nil {
		t.Fatalf("%s (%s) still works downstream; it must be refused", what, Fingerprint(value))
	}
	if e.subject.Refused != nil && !e.subject.Refused(err) {
		t.Fatalf("%s (%s): want the downstream to refuse it, got %v", what, Fingerprint(value), err)
	}
}

func (e *Env) mustBeValid(t *testing.T, what, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.subject.Check(ctx, value); err != nil {
		t.Fatalf("%s (%s) is not valid downstream: %v", what, Fingerprint(value), err)
	}
}

// mustEndRotated proves a finished rotation: AWSCURRENT is a new value that
// works downstream and keeps every field of the old one, AWSPREVIOUS holds
// the old value, and AWSPENDING is gone.
func (e *Env) mustEndRotated(t *testing.T, arn, token, old string) {
	t.Helper()
	id, cur, ok := e.Value(t, arn, rotation.LabelCurrent)
	if !ok || id != token {
		t.Fatalf("AWSCURRENT is on version %q, want the rotation's version %q", id, token)
	}
	if cur == old {
		t.Fatalf("AWSCURRENT still holds the old value %s", Fingerprint(old))
	}
	e.mustBeValid(t, "AWSCURRENT after rotation", cur)
	if _, prev, ok := e.Value(t, arn, rotation.LabelPrevious); !ok || prev != old {
		t.Fatalf("AWSPREVIOUS does not hold the old value %s", Fingerprint(old))
	}
	for v, labels := range e.Versions(t, arn) {
		if slices.Contains(labels, rotation.LabelPending) {
			t.Fatalf("AWSPENDING is still on version %s after the rotation", v)
		}
	}
	mustKeepFields(t, old, cur)
}

// mustKeepFields checks that the new value keeps every field of the old one.
func mustKeepFields(t *testing.T, old, cur string) {
	t.Helper()
	var o, c map[string]json.RawMessage
	if json.Unmarshal([]byte(old), &o) != nil || json.Unmarshal([]byte(cur), &c) != nil {
		t.Fatal("a version's value is not a JSON object")
	}
	for k := range o {
		if _, ok := c[k]; !ok {
			t.Fatalf("field %q of the old value is missing from the new one", k)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var errInjected = errors.New("injected failure")

// Forms returns the ways a secret string can appear in a text: as is,
// JSON-escaped (with and without HTML escaping, as slog's JSON handler and
// encoders write it), Go-quoted, query- and path-escaped, and escaped
// twice (JSON of a JSON value). A leak check searches for every form: a
// password with a quote or a backslash never appears raw in a JSON log.
func Forms(s string) []string {
	q := strconv.Quote(s)
	out := []string{s, q[1 : len(q)-1], url.QueryEscape(s), url.PathEscape(s)}
	for _, html := range []bool{true, false} {
		once := jsonInner(s, html)
		out = append(out, once)
		for _, html2 := range []bool{true, false} {
			twice := jsonInner(`"`+once+`"`, html2)
			out = append(out, twice[2:len(twice)-2]) // without the escaped quotes
		}
	}
	return out
}

// jsonInner is s as a JSON string without its quotes, with or without
// HTML escaping (encoding/json escapes <, > and &; other encoders do not).
func jsonInner(s string, html bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s)
	t := strings.TrimSpace(b.String())
	return t[1 : len(t)-1]
}

// Leaks reports whether text holds any form of secret (see Forms).
func Leaks(text, secret string) bool {
	if secret == "" {
		return false
	}
	for _, f := range Forms(secret) {
		if f != "" && strings.Contains(text, f) {
			return true
		}
	}
	return false
}
