package postgres

import (
	"errors"
	"fmt"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// MaxNameBytes is PostgreSQL's limit on a role name (NAMEDATALEN - 1).
// Longer names are silently truncated by the server, so they are refused.
const MaxNameBytes = 63

// ErrInvalid is wrapped by every error about a secret that this type refuses
// before it touches the database.
var ErrInvalid = errors.New("invalid PostgreSQL secret")

// parse decodes a version and checks what every PostgreSQL type needs.
// label ("AWSCURRENT", ...) names the version in errors; empty when the
// caller (the engine's Validate) already names it.
func parse(label string, v rotation.Version) (*dbsecret.Secret, error) {
	s, err := dbsecret.ParseVersion(v)
	if err == nil && s.Family() != dbsecret.FamilyPostgres {
		err = fmt.Errorf("%w: field \"engine\" is %q, a MySQL engine; use a MySQL rotation function for it, or set engine to postgres or aurora-postgresql", ErrInvalid, s.Engine)
	}
	if err == nil {
		err = checkName("username", s.Username)
	}
	if err != nil {
		if label != "" {
			err = fmt.Errorf("%s version %s: %w", label, v.ID, err)
		}
		return nil, err
	}
	return s, nil
}

func checkName(field, name string) error {
	if n := len(name); n > MaxNameBytes {
		return fmt.Errorf("%w: field %q is %d bytes, over PostgreSQL's %d-byte limit for role names; use a shorter name", ErrInvalid, field, n, MaxNameBytes)
	}
	return nil
}

// PublicFields names the database secret's fields that are not secret
// (see rotation.PublicFielder).
func (*SingleUser) PublicFields() []string { return dbsecret.PublicFields() }

// PublicFields names the database secret's fields that are not secret
// (see rotation.PublicFielder).
func (*MultiUser) PublicFields() []string { return dbsecret.PublicFields() }
