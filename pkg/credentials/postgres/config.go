package postgres

import (
	"context"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// Config configures both credential types.
type Config struct {
	// DB holds the CA bundle and the timeouts.
	DB dbsecret.Config
	// NewRDS builds the RDS API client that finds the host of an RDS-managed
	// master secret (MultiUser only). Nil refuses such master secrets.
	NewRDS func(ctx context.Context) (dbsecret.RDSAPI, error)
	// KeepSessionsOnRevoke leaves the open sessions of the other user of an
	// alternating pair running when MultiUser revokes; by default they are
	// ended, because a new password does not end a session opened with the
	// old one.
	KeepSessionsOnRevoke bool
}

// EnvRevokeKeepSessions is read by ConfigFromEnv into Config.KeepSessionsOnRevoke.
const EnvRevokeKeepSessions = dbsecret.EnvRevokeKeepSessions

// ConfigFromEnv reads ROTARY_CA_BUNDLE, ROTARY_CONNECT_TIMEOUT and
// ROTARY_STATEMENT_TIMEOUT (see dbsecret.ConfigFromEnv), and
// ROTARY_REVOKE_KEEP_SESSIONS (a boolean, default false). It leaves NewRDS
// nil: the multi-user function sets it to rdsendpoint.New, so that the
// single-user one does not link the RDS client.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	db, err := dbsecret.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	keep, err := dbsecret.RevokeKeepSessionsFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	return Config{DB: db, KeepSessionsOnRevoke: keep}, nil
}

// EnvReapKeepSessions makes the reaper of expiring users leave their open
// sessions running (see dbsecret.ExpiringConfigFromEnv).
const EnvReapKeepSessions = dbsecret.EnvReapKeepSessions
