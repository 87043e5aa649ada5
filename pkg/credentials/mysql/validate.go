package mysql

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// maxUsernameLen is the longest user name any supported server accepts
// (MariaDB 10.11); the server's own limit is checked once connected.
const maxUsernameLen = 128

// checkUsername refuses a user name Rotary will not put into SQL: only
// ASCII letters, digits and _ $ . - are accepted, at most limit characters.
// Quotes, backslashes, spaces, '@', '%' and non-ASCII letters are legal in
// MySQL account names but are refused so that a typo or a hostile value
// never reaches a statement.
func checkUsername(field, name string, limit int) error {
	if name == "" {
		return fmt.Errorf("%w: field %q is empty; set it to the database user name", dbsecret.ErrInvalidSecret, field)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '$' || r == '.' || r == '-') {
			return fmt.Errorf("%w: field %q is %q, which contains %q; Rotary rotates only users whose names use ASCII letters, digits and _ $ . - (rename the user or rotate it another way)", dbsecret.ErrInvalidSecret, field, name, r)
		}
	}
	if n := utf8.RuneCountInString(name); n > limit {
		return fmt.Errorf("%w: field %q is %d characters long, over the limit of %d; use a shorter user name", dbsecret.ErrInvalidSecret, field, n, limit)
	}
	return nil
}

// parseMySQL parses a version's value as a MySQL-family database secret.
func parseMySQL(v rotation.Version) (*dbsecret.Secret, error) {
	s, err := dbsecret.ParseVersion(v)
	if err != nil {
		return nil, fmt.Errorf("version %s: %w", v.ID, err)
	}
	if s.Family() != dbsecret.FamilyMySQL {
		return nil, fmt.Errorf("%w: version %s: field \"engine\" is %q, but this function rotates MySQL and MariaDB users; set engine to mysql, mariadb or aurora-mysql, or use the PostgreSQL function", dbsecret.ErrInvalidSecret, v.ID, s.Engine)
	}
	return s, nil
}

// validate is Validate shared by both types.
func validate(_ context.Context, v rotation.Version) (*dbsecret.Secret, error) {
	s, err := parseMySQL(v)
	if err != nil {
		return nil, err
	}
	if err := checkUsername("username", s.Username, maxUsernameLen); err != nil {
		return nil, fmt.Errorf("version %s: %w", v.ID, err)
	}
	return s, nil
}

// checkPair validates the current and pending versions of one rotation
// against each other: same engine, host, port, dbname, ssl and masterarn.
func checkPair(ctx context.Context, cur, pend rotation.Version) (*dbsecret.Secret, *dbsecret.Secret, error) {
	c, err := validate(ctx, cur)
	if err != nil {
		return nil, nil, err
	}
	p, err := validate(ctx, pend)
	if err != nil {
		return nil, nil, err
	}
	if err := dbsecret.CheckPending(c, p); err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

// PublicFields names the database secret's fields that are not secret
// (see rotation.PublicFielder).
func (*SingleUser) PublicFields() []string { return dbsecret.PublicFields() }

// PublicFields names the database secret's fields that are not secret
// (see rotation.PublicFielder).
func (*MultiUser) PublicFields() []string { return dbsecret.PublicFields() }
