package mysql

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// EnvUsernameLimit is the environment variable of AWS's templates that caps
// the length of the alternating user's name (<user>_clone).
const EnvUsernameLimit = "USERNAME_CHARACTER_LIMIT"

// Config holds the settings of both MySQL credential types.
type Config struct {
	// DB holds the connection settings shared by the database types (CA
	// bundle, timeouts).
	DB dbsecret.Config
	// UsernameLimit caps the clone's user name length in characters; 0 means
	// the server's own limit (the length of mysql.user's User column: 32 on
	// MySQL 5.7 and 8, 128 on MariaDB 10.11).
	UsernameLimit int
	// NewRDS builds the RDS API client that finds the host of an RDS-managed
	// master secret (MultiUser only). Nil refuses such master secrets.
	NewRDS func(ctx context.Context) (dbsecret.RDSAPI, error)
	// KeepSessionsOnRevoke leaves the open connections of the other user of
	// an alternating pair running when MultiUser revokes. By default they
	// are killed, because MySQL checks a password only when a connection
	// starts: a new password does not end a connection opened with the old one.
	KeepSessionsOnRevoke bool
	// MarkerDatabase is the database of the table that marks the expiring
	// users Rotary created (MySQL and MariaDB cannot mark an account
	// itself); empty means DefaultMarkerDatabase, "rotary".
	MarkerDatabase string
}

// EnvRevokeKeepSessions is read by ConfigFromEnv into Config.KeepSessionsOnRevoke
// (the same variable as the PostgreSQL functions').
const EnvRevokeKeepSessions = dbsecret.EnvRevokeKeepSessions

// EnvMarkerDatabase names the database of the marker table of expiring
// users (Config.MarkerDatabase).
const EnvMarkerDatabase = "ROTARY_MYSQL_MARKER_DATABASE"

// ConfigFromEnv reads the dbsecret settings (ROTARY_CA_BUNDLE,
// ROTARY_CONNECT_TIMEOUT, ROTARY_STATEMENT_TIMEOUT),
// USERNAME_CHARACTER_LIMIT, ROTARY_REVOKE_KEEP_SESSIONS (a boolean,
// default false) and ROTARY_MYSQL_MARKER_DATABASE (default rotary). It
// leaves NewRDS nil: the multi-user function sets it to rdsendpoint.New, so
// that the other MySQL functions do not link the RDS client.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	db, err := dbsecret.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{DB: db}
	if s := strings.TrimSpace(getenv(EnvUsernameLimit)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("%w: %s %q is not a positive whole number; set it to the longest user name the server accepts (32 for MySQL 8) or unset it to use the server's limit", dbsecret.ErrConfig, EnvUsernameLimit, s)
		}
		c.UsernameLimit = n
	}
	if c.KeepSessionsOnRevoke, err = dbsecret.RevokeKeepSessionsFromEnv(getenv); err != nil {
		return Config{}, err
	}
	if s := strings.TrimSpace(getenv(EnvMarkerDatabase)); s != "" {
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '$') || len(s) > 64 {
				return Config{}, fmt.Errorf("%w: %s %q is not a database name of at most 64 ASCII letters, digits, _ and $", dbsecret.ErrConfig, EnvMarkerDatabase, s)
			}
		}
		c.MarkerDatabase = s
	}
	return c, nil
}
