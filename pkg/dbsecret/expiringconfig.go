package dbsecret

import (
	"fmt"
	"strings"
	"time"

	"github.com/rotary-secrets/rotary/pkg/envflag"
)

// Environment variables of the expiring-user types (read by
// ExpiringConfigFromEnv).
const (
	// EnvCredentialTTL is the lifetime of each expiring user, a Go duration.
	EnvCredentialTTL = "ROTARY_CREDENTIAL_TTL"
	// EnvCredentialMinTTL lowers or raises the shortest lifetime accepted.
	EnvCredentialMinTTL = "ROTARY_CREDENTIAL_MIN_TTL"
	// EnvReapKeepSessions, when true, makes the reaper drop expired users
	// without ending their open sessions.
	EnvReapKeepSessions = "ROTARY_REAP_KEEP_SESSIONS"
)

// DefaultMinTTL is the shortest credential lifetime accepted by default: a
// credential must outlive the rotation that replaces it, and Secrets
// Manager rotates at most every 4 hours (a schedule's shortest rate) within
// a window of at least 1 hour. A TTL below it would let AWSCURRENT expire
// before any schedule could replace it. The CDK app checks the real
// schedule; this is the floor a function can check on its own.
const DefaultMinTTL = 5 * time.Hour

// MinMinTTL is the lowest ROTARY_CREDENTIAL_MIN_TTL accepted (tests and the
// local stack use short lifetimes).
const MinMinTTL = time.Second

// ExpiringConfig is the lifetime settings of the expiring-user types.
type ExpiringConfig struct {
	// TTL is how long each new user lives (its expiresAt is its creation
	// plus TTL). Required.
	TTL time.Duration
	// MinTTL is the shortest TTL accepted; DefaultMinTTL when zero.
	MinTTL time.Duration
	// KeepSessionsOnReap drops expired users without ending their sessions.
	KeepSessionsOnReap bool
}

// Check refuses a missing TTL or one shorter than the minimum.
func (c ExpiringConfig) Check() error {
	minTTL := c.MinTTL
	if minTTL == 0 {
		minTTL = DefaultMinTTL
	}
	if c.TTL <= 0 {
		return fmt.Errorf("%w: %s is not set; set it to each credential's lifetime, a Go duration longer than the rotation interval plus its window (for example 192h for a weekly rotation)", ErrConfig, EnvCredentialTTL)
	}
	if c.TTL < minTTL {
		return fmt.Errorf("%w: %s is %s, shorter than the minimum of %s: a credential must outlive the rotation that replaces it (Secrets Manager rotates at most every 4 hours, within a window of at least 1 hour); set it longer than the rotation interval plus its window",
			ErrConfig, EnvCredentialTTL, c.TTL, minTTL)
	}
	return nil
}

// ExpiringConfigFromEnv reads ROTARY_CREDENTIAL_TTL (required),
// ROTARY_CREDENTIAL_MIN_TTL (default 5h, at least 1s) and
// ROTARY_REAP_KEEP_SESSIONS (a boolean, default false), and checks them.
func ExpiringConfigFromEnv(getenv func(string) string) (ExpiringConfig, error) {
	var c ExpiringConfig
	parse := func(name string) (time.Duration, error) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%w: %s is %q, not a positive Go duration; use a value such as 192h or 30m", ErrConfig, name, v)
		}
		return d, nil
	}
	var err error
	if c.TTL, err = parse(EnvCredentialTTL); err != nil {
		return ExpiringConfig{}, err
	}
	if c.MinTTL, err = parse(EnvCredentialMinTTL); err != nil {
		return ExpiringConfig{}, err
	}
	if c.MinTTL != 0 && c.MinTTL < MinMinTTL {
		return ExpiringConfig{}, fmt.Errorf("%w: %s is %s, below the lowest accepted %s", ErrConfig, EnvCredentialMinTTL, c.MinTTL, MinMinTTL)
	}
	if v := strings.TrimSpace(getenv(EnvReapKeepSessions)); v != "" {
		if c.KeepSessionsOnReap, err = envflag.ParseBool(v); err != nil {
			return ExpiringConfig{}, fmt.Errorf("%w: %s is %q, not a boolean; use true or false", ErrConfig, EnvReapKeepSessions, v)
		}
	}
	if err := c.Check(); err != nil {
		return ExpiringConfig{}, err
	}
	return c, nil
}
