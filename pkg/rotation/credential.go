package rotation

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/rotary-secrets/rotary/pkg/jsontext"
	"github.com/rotary-secrets/rotary/pkg/password"
)

// Version is one version of a secret as a credential type sees it: its
// VersionId and its SecretString, which for every Rotary type is a JSON object.
type Version struct {
	ID    string
	Value string

	// decoded is shared by every copy of a version the engine read in one
	// step (see Decoded); nil for a Version built by hand.
	decoded *decodeCache
}

// NewVersion returns a version whose Decoded results are shared by its
// copies, as the engine's are within a step. Tests and tools that build
// versions by hand use it when they care; a plain Version{} literal works
// too and decodes on every call.
func NewVersion(id, value string) Version {
	return Version{ID: id, Value: value, decoded: &decodeCache{value: value}}
}

// decodeCache holds the decoded forms of one value. A copy of a Version
// whose Value was changed no longer matches it and decodes afresh.
type decodeCache struct {
	value string
	mu    sync.Mutex
	m     map[any]decodeResult
}

type decodeResult struct {
	v   any
	err error
}

// Decoded returns what decode(v.Value) returned the first time it was
// called with this key for this version in the current step, calling it
// only then. A credential type decodes a version once per step this way,
// in Validate, and its Set, Test or Probe reuse the result instead of
// decoding (and checking) the value again. The key is any comparable
// value private to the caller, as for context.WithValue; decode must not
// depend on anything but the value. Every caller gets the same result, so
// a caller that hands out something mutable must copy it (as
// dbsecret.ParseVersion does). A Version whose Value was changed after the
// engine read it decodes afresh.
func (v Version) Decoded(key any, decode func(value string) (any, error)) (any, error) {
	if v.decoded == nil || v.decoded.value != v.Value {
		return decode(v.Value)
	}
	c := v.decoded
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.m[key]; ok {
		return r.v, r.err
	}
	x, err := decode(v.Value)
	if c.m == nil {
		c.m = make(map[any]decodeResult)
	}
	c.m[key] = decodeResult{x, err}
	return x, err
}

// Fields decodes the version's value as a JSON object, keeping every field's
// raw JSON so that nothing a type does not know about is lost.
func (v Version) Fields() (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v.Value), &m); err != nil || m == nil {
		return nil, fmt.Errorf("version %s: secret value is not a JSON object", v.ID)
	}
	return m, nil
}

// Decode unmarshals the version's value into dst.
func (v Version) Decode(dst any) error {
	if err := json.Unmarshal([]byte(v.Value), dst); err != nil {
		return fmt.Errorf("version %s: secret value is not valid JSON for this type: %s", v.ID, jsontext.ErrorText(err))
	}
	return nil
}

// SecretStore lets a credential type read other secrets, such as the master
// secret of alternating-users rotation. Every value it returns is registered
// with the engine's scrubber, so it cannot leak into logs or errors.
type SecretStore interface {
	// Current returns the AWSCURRENT version of the secret named by id (a name or ARN).
	Current(ctx context.Context, id string) (Version, error)
	// Tags returns the secret's tags.
	Tags(ctx context.Context, id string) (map[string]string, error)
}

// GenerateRequest asks for the pending value of a rotation.
type GenerateRequest struct {
	SecretARN string
	// Current is the AWSCURRENT version, already validated by Validate.
	Current Version
	// Passwords generates passwords under the function's password policy.
	Passwords *password.Policy
}

// GenerateResponse names the fields that change. The engine copies the
// current value and overwrites exactly these fields; every other field is kept.
type GenerateResponse struct {
	Changes map[string]any
}

// SetRequest asks a credential type to make the pending value valid downstream.
type SetRequest struct {
	SecretARN string
	Current   Version
	Pending   Version
	// Previous returns the AWSPREVIOUS version, reading it only when asked;
	// ok is false when the secret has no AWSPREVIOUS version.
	Previous func(ctx context.Context) (v Version, ok bool, err error)
	Secrets  SecretStore
	// Note, when set, records for the step's log line what the revoke did
	// or chose not to do beyond the secret's own credentials (the base
	// user's password of expiring users, say). Never a secret value.
	Note func(string)
}

// TestRequest asks a credential type to prove that the pending value works.
type TestRequest struct {
	SecretARN string
	Pending   Version
	Secrets   SecretStore
}

// Credential is what a credential type implements: the three questions of a
// rotation. Nothing in it knows about Lambda events or staging labels.
type Credential interface {
	// Validate checks that a version's value is well-formed for this type.
	// It runs on AWSCURRENT before createSecret builds anything from it, and
	// on AWSPENDING before setSecret and testSecret use it. The error must
	// name the offending field and say how to fix it.
	Validate(ctx context.Context, v Version) error
	// Generate returns the fields that change in the pending value.
	Generate(ctx context.Context, req GenerateRequest) (GenerateResponse, error)
	// Set makes the pending value valid downstream. It must be safe to call
	// twice: it first checks whether the pending value already works.
	Set(ctx context.Context, req SetRequest) error
	// Test proves the pending value works, for a database by logging in with
	// it and running a query.
	Test(ctx context.Context, req TestRequest) error
}

// SetReader is an optional ability, found by type assertion, of a type
// whose Set reads the AWSCURRENT version of other secrets through
// SetRequest.Secrets (the master secret of alternating users). SetReads
// names them (names or ARNs, as the type passes them to Secrets.Current),
// from the pending version, which Validate has accepted; setSecret then
// reads them together with the secret's own AWSCURRENT in one
// BatchGetSecretValue call instead of one GetSecretValue each, and
// Secrets.Current returns what it read. A secret the batch could not read
// is read on its own when Set asks for it, so SetReads changes the number
// of calls, never what Set sees.
type SetReader interface {
	SetReads(pending Version) []string
}

// RevokeRequest asks a credential type to invalidate every credential of
// the secret except the current one.
type RevokeRequest struct {
	SecretARN string
	// Current is AWSCURRENT, which must keep working.
	Current Version
	// Previous returns AWSPREVIOUS, reading it only when asked; ok is false
	// when there is none.
	Previous func(ctx context.Context) (v Version, ok bool, err error)
	Secrets  SecretStore
	// Note, when set, records for the step's log line what the revoke did
	// or chose not to do beyond the secret's own credentials (the base
	// user's password of expiring users, say). Never a secret value.
	Note func(string)
}

// Revoker is an optional ability, found by type assertion: after a rotation
// has made a fresh AWSCURRENT, Revoke makes sure no other credential of the
// secret logs in any more (for alternating users: the other user's old
// password), and returns an error rather than revoke half-way. It must be
// safe to call twice and must leave AWSCURRENT working; when AWSCURRENT
// itself does not work downstream it must fail, naming AWSCURRENT, and
// change nothing. rotationtest.Run checks all of this.
type Revoker interface {
	Revoke(ctx context.Context, req RevokeRequest) error
}

// ReapRequest asks a credential type to drop the credentials of the secret
// that have expired downstream.
type ReapRequest struct {
	SecretARN string
	// Current is AWSCURRENT, whose credential must never be dropped.
	Current Version
	// Pending is AWSPENDING when a rotation is unfinished (on another
	// version than AWSCURRENT): its credential must not be dropped either.
	Pending *Version
	Secrets SecretStore
}

// ReapResponse says what a reap did.
type ReapResponse struct {
	// Dropped names the credentials dropped (user names: never a secret).
	Dropped []string
	// Kept counts the credentials of the secret left in place.
	Kept int
}

// Standalone is an optional marker, found by type assertion, for types with
// no downstream system (random secrets): their Probe accepts any
// well-formed value, so "logs in" proves nothing about an old version, and
// the probe report says so (recovery.Report.NothingDownstream) for tools
// that check a revoke, such as rotary incident.
type Standalone interface {
	Standalone()
}

// Reaper is an optional ability, found by type assertion, for types whose
// every rotation creates a credential that expires (expiring users): Reap
// drops the credentials whose expiry has passed, never AWSCURRENT's or
// AWSPENDING's, nor one the type did not create. The engine calls it after
// every successful finishSecret (best-effort: its failure is logged, never
// fails the step) and for the operator step reapSecret, which the watch
// function invokes. It must be safe to call at any time and twice.
type Reaper interface {
	Reap(ctx context.Context, req ReapRequest) (ReapResponse, error)
}

// RestoreRequest asks a credential type to make AWSCURRENT's credential
// valid downstream again, after setSecret may have replaced it with another
// version's and the rotation then failed (or AWSCURRENT moved after all).
type RestoreRequest struct {
	SecretARN string
	// Current is AWSCURRENT, which must log in again.
	Current Version
	// Pending is the version whose credential may be the one downstream now:
	// the rotation's pending version, which setSecret set (or was about to).
	Pending Version
	// Previous returns AWSPREVIOUS, reading it only when asked; ok is false
	// when there is none.
	Previous func(ctx context.Context) (v Version, ok bool, err error)
	Secrets  SecretStore
	// Note, when set, records for the step's log line what the revoke did
	// or chose not to do beyond the secret's own credentials (the base
	// user's password of expiring users, say). Never a secret value.
	Note func(string)
}

// Restorer is an optional ability, found by type assertion, for credential
// types whose Set replaces the credential that AWSCURRENT holds (a user
// with one password changes it): until finishSecret moves AWSCURRENT, the
// applications reading AWSCURRENT cannot log in. When testSecret fails, or
// finishSecret fails while AWSCURRENT is still on the old version, the
// engine calls Restore, best-effort and bounded in time, so that the
// application can log in again while Secrets Manager retries the rotation.
//
// Restore must do nothing when AWSCURRENT already logs in (and then answer
// restored false), must change only the secret's own credential, and must
// be safe to call twice. A type that implements Restorer also declares that
// only one of its credentials is valid at a time, so a probe expects every
// other version to be refused.
type Restorer interface {
	Restore(ctx context.Context, req RestoreRequest) (restored bool, err error)
}

// ProbeRequest asks a credential type whether one version's credential
// logs in.
type ProbeRequest struct {
	SecretARN string
	// Version is the version whose credential to try.
	Version Version
	// Current is AWSCURRENT. Every probe connects the way AWSCURRENT says
	// (server, port, TLS): a version naming another server is not tried.
	Current Version
	Secrets SecretStore
}

// Prober is an optional ability, found by type assertion: Probe logs in
// with one version's credential and changes nothing. It returns nil when
// the login works and the server is known to check the credential; an
// error wrapping ErrRefused when the server refused it (wrong password,
// login not allowed, account locked); one wrapping ErrUnproven when the
// login works but the server accepts any password, so it proves nothing;
// one wrapping ErrOtherTarget when the version names another server or
// user than the type would ever log in as; and any other error when it
// cannot tell (the server is unreachable, TLS failed). The engine's
// probeSecret and recoverSecret steps are built on it.
type Prober interface {
	Probe(ctx context.Context, req ProbeRequest) error
}

// PublicFielder is an optional ability, found by type assertion: it names
// the fields of the type's secret JSON whose values say where and who (a
// host, a user name), never how to log in. The engine's scrubber leaves
// their values in log lines and errors; every other string of every secret
// the engine reads is replaced by Redacted. A type without it has every
// string scrubbed.
type PublicFielder interface {
	PublicFields() []string
}

// PublicFieldsOf returns the public fields of a credential type, or none.
func PublicFieldsOf(cred Credential) []string {
	if p, ok := cred.(PublicFielder); ok {
		return p.PublicFields()
	}
	return nil
}
