// Package issuer hands callers short-lived database users on demand, as
// `vault read database/creds/<role>` does, without a server to run: the
// credential-issuer function (functions/credential-issuer) sits behind a
// Lambda function URL with AWS_IAM auth, so every request is signed by an
// IAM principal and the URL's policy is the access control. A request names
// a configured role (Role); the issuer logs in with the role's master secret,
// creates a user with exactly the role's base user's privileges that expires
// (on PostgreSQL the server enforces it: VALID UNTIL; on MySQL and MariaDB
// the reaper drops it), answers the credential once, and keeps nothing but
// an audit line (who, which role, which user, until when; never the
// password).
//
// The issued users are the expiring users of docs/expiring-users.md: they
// carry Rotary's marker with the origin "issued:<role>", so the reaper of
// the rotation types and the issuer's own reap recognise them, and nothing
// else is ever dropped. The operator actions (list the leases of a role,
// revoke them all, reap the expired ones) are direct Lambda invocations
// (OperatorEvent), which the function URL cannot reach.
package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/password"
)

// Backend logs in to one database family's servers with a master secret.
// The engines' expiring-user primitives implement it (backends.go).
type Backend interface {
	Open(ctx context.Context, master *dbsecret.Secret) (Session, error)
}

// Session is the master's session on a server: it creates, lists and drops
// the users issued for a role. One request uses one session (one login).
type Session interface {
	// Create makes a login user with exactly base's privileges and the
	// given password, expiring at expiresAt (enforced by the server where
	// it can), marked as Rotary's and as issued for role. Its name is new:
	// it is none of taken.
	Create(ctx context.Context, base, role, password string, expiresAt time.Time, taken []User) (User, error)
	// Users lists the users issued for role with base's privileges.
	Users(ctx context.Context, base, role string) ([]User, error)
	// Drop drops users (as Users found them), ending their open sessions
	// first unless keepSessions.
	Drop(ctx context.Context, base string, users []User, keepSessions bool) error
	Close(ctx context.Context)
}

// User is one issued user on a server.
type User struct {
	Name string
	// Host is the account's host on MySQL and MariaDB; empty on PostgreSQL.
	Host      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Expired reports whether the user's expiry is at or before now.
func (u User) Expired(now time.Time) bool { return !u.ExpiresAt.After(now) }

// SecretsAPI is the part of the Secrets Manager client the issuer uses.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Issuer issues, lists and revokes the credentials of its roles.
type Issuer struct {
	Config Config
	// Backends by family (registry.FamilyPostgres, registry.FamilyMySQL).
	Backends map[string]Backend
	Secrets  SecretsAPI
	// Passwords generates the issued users' passwords.
	Passwords *password.Policy
	// Log receives the audit lines and the errors; it must scrub (the
	// function's is rotation.NewScrubHandler's).
	Log *slog.Logger
	// FunctionName is the metric dimension of the audit lines.
	FunctionName string
	// KeepSessionsOnReap leaves the open sessions of expired users running
	// when they are reaped (revoke always ends them).
	KeepSessionsOnReap bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (is *Issuer) now() time.Time {
	if is.Now != nil {
		return is.Now()
	}
	return time.Now()
}

// Caller is who asked, as the function URL's IAM authorizer reports it.
type Caller struct {
	ARN       string `json:"userArn"`
	AccessKey string `json:"accessKey,omitempty"`
	AccountID string `json:"accountId,omitempty"`
	CallerID  string `json:"callerId,omitempty"`
}

// Credential is what a caller gets, once.
type Credential struct {
	Username  string    `json:"username"`
	Password  string    `json:"password"`
	Engine    string    `json:"engine"`
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	DBName    string    `json:"dbname,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
	Role      string    `json:"role"`
}

// Lease is one live issued user of a role, as the operators see it.
type Lease struct {
	Role      string    `json:"role"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	Expired   bool      `json:"expired"`
}

// Errors a request can meet, which the function URL answers with a status.
var (
	// ErrUnknownRole: 404.
	ErrUnknownRole = errors.New("unknown role")
	// ErrBadRequest: 400.
	ErrBadRequest = errors.New("bad request")
)

// Role returns the configured role called name.
func (is *Issuer) Role(name string) (Role, error) {
	r, ok := is.Config.Roles[name]
	if !ok {
		return Role{}, fmt.Errorf("%w: no role %q is configured; the roles are %s", ErrUnknownRole, name, strings.Join(is.Config.RoleNames(), ", "))
	}
	return r, nil
}

// open reads the role's master secret (AWSCURRENT), checks that it is for
// the role's engine, and logs in with it.
func (is *Issuer) open(ctx context.Context, r Role) (*dbsecret.Secret, Session, error) {
	b, ok := is.Backends[r.Engine]
	if !ok {
		return nil, nil, fmt.Errorf("role %q: this function has no %s backend", r.Name, r.Engine)
	}
	out, err := is.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.MasterARN)})
	if err != nil {
		return nil, nil, fmt.Errorf("role %q: read the master secret %s: %w; check that it exists and that the function may read it", r.Name, r.MasterARN, err)
	}
	registerSecret(ctx, aws.ToString(out.SecretString))
	m, err := dbsecret.Parse(aws.ToString(out.SecretString))
	if err != nil {
		return nil, nil, fmt.Errorf("role %q: master secret %s: %w", r.Name, r.MasterARN, err)
	}
	registerSecret(ctx, m.Password)
	if m.Family() != r.Engine {
		return nil, nil, fmt.Errorf("role %q: the master secret %s is for engine %q, but the role's engine is %s; point masterarn at an admin secret of the role's server", r.Name, r.MasterARN, m.Engine, r.Engine)
	}
	if r.DBName != "" {
		m.DBName = r.DBName
	}
	sess, err := b.Open(ctx, m)
	if err != nil {
		return nil, nil, fmt.Errorf("role %q: %w", r.Name, err)
	}
	return m, sess, nil
}

// Issue creates a user of the role living ttl (empty: the role's default)
// for caller, and writes the audit line.
func (is *Issuer) Issue(ctx context.Context, caller Caller, roleName, ttl string) (Credential, error) {
	r, err := is.Role(roleName)
	if err != nil {
		return Credential{}, err
	}
	life, err := r.TTL(ttl)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	pw, err := is.Passwords.Generate()
	if err != nil {
		return Credential{}, fmt.Errorf("generate a password: %w", err)
	}
	registerSecret(ctx, pw)
	m, sess, err := is.open(ctx, r)
	if err != nil {
		return Credential{}, err
	}
	defer sess.Close(ctx)
	now := is.now()
	// To the second, as the marker keeps it, rounded down: the credential
	// never outlives what the caller asked for.
	expiresAt := now.Add(life).UTC().Truncate(time.Second)
	users, err := is.issued(ctx, r, sess)
	if err != nil {
		return Credential{}, err
	}
	// A request is a good moment to reap: on MySQL and MariaDB the reaper
	// is what ends an expired credential. A failure to reap does not stop
	// the caller; it is logged.
	if _, err := is.reap(ctx, r, sess, users, now); err != nil {
		is.Log.LogAttrs(ctx, slog.LevelWarn, "reap before issue failed", slog.String("role", r.Name), slog.String("error", err.Error()))
	}
	user, err := sess.Create(ctx, r.BaseUser, r.Name, pw, expiresAt, users)
	if err != nil {
		return Credential{}, fmt.Errorf("role %q: create a user of %q: %w", r.Name, r.BaseUser, err)
	}
	is.audit(ctx, "credential issued", caller, r.Name, user.Name, expiresAt, life)
	return Credential{
		Username: user.Name, Password: pw, Engine: m.Engine, Host: m.Host, Port: m.Port, DBName: m.Database(),
		ExpiresAt: expiresAt, Role: r.Name,
	}, nil
}

// Leases lists the issued users of a role (every role when roleName is
// empty), expired ones not yet reaped included, by role and oldest first.
// It goes on after a role fails and returns what it found with every error.
func (is *Issuer) Leases(ctx context.Context, roleName string) ([]Lease, error) {
	roles, err := is.roles(roleName)
	if err != nil {
		return nil, err
	}
	now := is.now()
	out := []Lease{}
	var errs []error
	for _, r := range roles {
		_, sess, err := is.open(ctx, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		users, err := is.issued(ctx, r, sess)
		sess.Close(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, leases(r, users, now)...)
	}
	return out, errors.Join(errs...)
}

// Revoke drops every issued user of the role, ending their sessions, and
// returns their leases.
func (is *Issuer) Revoke(ctx context.Context, roleName string) ([]Lease, error) {
	if strings.TrimSpace(roleName) == "" {
		return nil, fmt.Errorf("%w: name the role whose leases to revoke", ErrBadRequest)
	}
	r, err := is.Role(roleName)
	if err != nil {
		return nil, err
	}
	_, sess, err := is.open(ctx, r)
	if err != nil {
		return nil, err
	}
	defer sess.Close(ctx)
	users, err := is.issued(ctx, r, sess)
	if err != nil {
		return nil, err
	}
	out := leases(r, users, is.now())
	if len(users) == 0 {
		return out, nil
	}
	if err := sess.Drop(ctx, r.BaseUser, users, false); err != nil {
		return nil, fmt.Errorf("role %q: drop its %d issued users: %w", r.Name, len(users), err)
	}
	for _, l := range out {
		is.Log.LogAttrs(ctx, slog.LevelInfo, "lease revoked", slog.String("role", l.Role), slog.String("user", l.Username), slog.Time("expiresAt", l.ExpiresAt))
	}
	return out, nil
}

// Reap drops the expired issued users of a role (every role when roleName
// is empty) and returns their leases. It goes on after a role fails and
// returns every error.
func (is *Issuer) Reap(ctx context.Context, roleName string) ([]Lease, error) {
	roles, err := is.roles(roleName)
	if err != nil {
		return nil, err
	}
	now := is.now()
	out := []Lease{}
	var errs []error
	for _, r := range roles {
		_, sess, err := is.open(ctx, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		users, err := is.issued(ctx, r, sess)
		if err == nil {
			var reaped []Lease
			reaped, err = is.reap(ctx, r, sess, users, now)
			out = append(out, reaped...)
		}
		sess.Close(ctx)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// reap drops the users of r (as issued listed them) whose expiry has
// passed by now.
func (is *Issuer) reap(ctx context.Context, r Role, sess Session, users []User, now time.Time) ([]Lease, error) {
	var expired []User
	for _, u := range users {
		if u.Expired(now) {
			expired = append(expired, u)
		}
	}
	if len(expired) == 0 {
		return nil, nil
	}
	if err := sess.Drop(ctx, r.BaseUser, expired, is.KeepSessionsOnReap); err != nil {
		return nil, fmt.Errorf("role %q: drop its %d expired users: %w", r.Name, len(expired), err)
	}
	out := leases(r, expired, now)
	for _, l := range out {
		is.Log.LogAttrs(ctx, slog.LevelInfo, "expired lease reaped", slog.String("role", l.Role), slog.String("user", l.Username), slog.Time("expiresAt", l.ExpiresAt))
	}
	return out, nil
}

func leases(r Role, users []User, now time.Time) []Lease {
	out := make([]Lease, 0, len(users))
	for _, u := range users {
		out = append(out, Lease{Role: r.Name, Username: u.Name, CreatedAt: u.CreatedAt, ExpiresAt: u.ExpiresAt, Expired: u.Expired(now)})
	}
	return out
}

// issued lists the users the issuer made for r, oldest first.
func (is *Issuer) issued(ctx context.Context, r Role, sess Session) ([]User, error) {
	users, err := sess.Users(ctx, r.BaseUser, r.Name)
	if err != nil {
		return nil, fmt.Errorf("role %q: list the users of %q: %w", r.Name, r.BaseUser, err)
	}
	sort.SliceStable(users, func(i, j int) bool { return users[i].CreatedAt.Before(users[j].CreatedAt) })
	return users, nil
}

func (is *Issuer) roles(name string) ([]Role, error) {
	if name != "" {
		r, err := is.Role(name)
		if err != nil {
			return nil, err
		}
		return []Role{r}, nil
	}
	var out []Role
	for _, n := range is.Config.RoleNames() {
		out = append(out, is.Config.Roles[n])
	}
	return out, nil
}
