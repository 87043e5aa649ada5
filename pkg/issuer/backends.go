package issuer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/registry"
)

// The backends are the expiring-user primitives of pkg/credentials/postgres
// and pkg/credentials/mysql (docs/expiring-users.md): the issued users are
// expiring users whose marker's origin is dbsecret.OriginIssued(role).

// Backends returns the PostgreSQL and MySQL/MariaDB backends.
func Backends(pg postgres.Config, my mysql.Config) map[string]Backend {
	return map[string]Backend{registry.FamilyPostgres: pgBackend{pg}, registry.FamilyMySQL: myBackend{my}}
}

// nameAttempts bounds the draws of a fresh name: two requests in the same
// second draw one of 32^4 suffixes each.
const nameAttempts = 5

// createFresh draws a name with next until it is none of taken (this
// role's users) and create makes it. create only creates (the engines'
// CreateOnly): a user of that name that exists already, whoever's it is
// (another role's, a rotation's, one made meanwhile by a concurrent
// request), is refused with exists and never taken over, and another name
// is drawn.
func createFresh(next func() (string, error), taken []User, exists error, create func(name string) error) (string, error) {
	for range nameAttempts {
		name, err := next()
		if err != nil {
			return "", err
		}
		if slices.ContainsFunc(taken, func(u User) bool { return u.Name == name }) {
			continue
		}
		err = create(name)
		if errors.Is(err, exists) {
			continue
		}
		if err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("no free user name after %d draws; try again", nameAttempts)
}

func toUsers(found []dbsecret.ExpiringUser, role string) []User {
	origin := dbsecret.OriginIssued(role)
	var out []User
	for _, u := range found {
		if u.Origin == origin {
			out = append(out, User{Name: u.Name, Host: u.Host, CreatedAt: u.CreatedAt, ExpiresAt: u.ExpiresAt})
		}
	}
	return out
}

type pgBackend struct{ cfg postgres.Config }

type pgSession struct{ a *postgres.Admin }

func (b pgBackend) Open(ctx context.Context, master *dbsecret.Secret) (Session, error) {
	a, err := b.cfg.OpenAdmin(ctx, master)
	if err != nil {
		return nil, err
	}
	return pgSession{a}, nil
}

func (s pgSession) Create(ctx context.Context, base, role, password string, expiresAt time.Time, taken []User) (User, error) {
	now := time.Now()
	name, err := createFresh(func() (string, error) { return postgres.ExpiringUserName(base, now) }, taken, postgres.ErrUserExists, func(name string) error {
		spec := postgres.ExpiringUserSpec{Name: name, Base: base, Origin: dbsecret.OriginIssued(role), Password: password, ExpiresAt: expiresAt, CreateOnly: true}
		return s.a.CreateExpiringUser(ctx, spec)
	})
	if err != nil {
		return User{}, err
	}
	return User{Name: name, CreatedAt: now.UTC().Truncate(time.Second), ExpiresAt: expiresAt}, nil
}

func (s pgSession) Users(ctx context.Context, base, role string) ([]User, error) {
	found, err := s.a.ListExpiringUsers(ctx, base)
	if err != nil {
		return nil, err
	}
	return toUsers(found, role), nil
}

func (s pgSession) Drop(ctx context.Context, base string, users []User, keepSessions bool) error {
	var errs []error
	for _, u := range users {
		errs = append(errs, s.a.DropExpiringUser(ctx, base, u.Name, keepSessions))
	}
	return errors.Join(errs...)
}

func (s pgSession) Close(ctx context.Context) { s.a.Close(ctx) }

type myBackend struct{ cfg mysql.Config }

type mySession struct{ a *mysql.Admin }

func (b myBackend) Open(ctx context.Context, master *dbsecret.Secret) (Session, error) {
	a, err := b.cfg.OpenAdmin(ctx, master)
	if err != nil {
		return nil, err
	}
	return mySession{a}, nil
}

func (s mySession) Create(ctx context.Context, base, role, password string, expiresAt time.Time, taken []User) (User, error) {
	limit, err := s.a.NameLimit(ctx)
	if err != nil {
		return User{}, err
	}
	now := time.Now()
	var host string
	name, err := createFresh(func() (string, error) { return mysql.ExpiringUserName(base, limit, now) }, taken, mysql.ErrUserExists, func(name string) error {
		spec := mysql.ExpiringUserSpec{Name: name, Base: base, Origin: dbsecret.OriginIssued(role), Password: password, ExpiresAt: expiresAt, CreateOnly: true}
		var err error
		host, err = s.a.CreateExpiringUser(ctx, spec)
		return err
	})
	if err != nil {
		return User{}, err
	}
	return User{Name: name, Host: host, CreatedAt: now.UTC().Truncate(time.Second), ExpiresAt: expiresAt}, nil
}

func (s mySession) Users(ctx context.Context, base, role string) ([]User, error) {
	found, err := s.a.ListExpiringUsers(ctx, base)
	if err != nil {
		return nil, err
	}
	return toUsers(found, role), nil
}

func (s mySession) Drop(ctx context.Context, base string, users []User, keepSessions bool) error {
	var errs []error
	for _, u := range users {
		errs = append(errs, s.a.DropExpiringUser(ctx, base, u.Name, u.Host, keepSessions))
	}
	return errors.Join(errs...)
}

func (s mySession) Close(context.Context) { s.a.Close() }
