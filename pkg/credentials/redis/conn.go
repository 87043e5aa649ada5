package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrLogin is wrapped (with rotation.ErrRefused) when the server refuses a
// user name and password pair, or the user is off.
var ErrLogin = fmt.Errorf("%w: the Redis server refused the user name and password (or the user is off)", rotation.ErrRefused)

// session is one authenticated connection.
type session struct {
	c    *goredis.Client
	user string
	addr string
}

func (s *session) Close() { _ = s.c.Close() }

// dial connects to sec's server the way sec says (TLS verified unless
// "ssl": false, never falling back to plaintext), authenticates as user
// with password and runs PING. A PING the user may not run (NOPERM) still
// proves the login: the server answers NOPERM only to an authenticated user.
func dial(ctx context.Context, cfg Config, sec *Secret, user, password string) (*session, error) {
	tc, err := cfg.DB.TLS(sec.dbTLS())
	if err != nil {
		return nil, err
	}
	c := goredis.NewClient(&goredis.Options{
		Addr: sec.Addr(), Username: user, Password: password, TLSConfig: tc,
		Protocol: 2, DisableIdentity: true, PoolSize: 1, MaxRetries: -1,
		DialTimeout: cfg.DB.Connect(), ReadTimeout: cfg.DB.Statement(), WriteTimeout: cfg.DB.Statement(),
		ContextTimeoutEnabled: true,
	})
	s := &session{c: c, user: user, addr: sec.Addr()}
	// The connection, the TLS handshake and the login, bounded together.
	pctx, cancel := context.WithTimeout(ctx, cfg.DB.Connect())
	defer cancel()
	err = c.Ping(pctx).Err()
	switch {
	case err == nil, isCode(err, "NOPERM"):
		return s, nil
	case isCode(err, "WRONGPASS"):
		s.Close()
		return nil, fmt.Errorf("log in to %s as %q: %w", s.addr, user, ErrLogin)
	default:
		s.Close()
		return nil, fmt.Errorf("connect to %s as %q: %w", s.addr, user, safeErr(err))
	}
}

// isCode reports whether err is a Redis error reply with that code.
func isCode(err error, code string) bool {
	var re goredis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := err.Error()
	return msg == code || strings.HasPrefix(msg, code+" ")
}

// safeErr is err, or for a server's error reply only its code (the first
// word) unless it is NOPERM, whose text names the user and the command:
// a reply to ACL SETUSER can quote its arguments.
func safeErr(err error) error {
	var re goredis.Error
	if !errors.As(err, &re) || isCode(err, "NOPERM") {
		return err
	}
	code, _, _ := strings.Cut(err.Error(), " ")
	return fmt.Errorf("the server answered %s", code)
}

// hashHex is the form in which Redis keeps a password: SHA-256, in hex.
func hashHex(pw string) string {
	h := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(h[:])
}

func probePassword() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "rotary-probe-" + hex.EncodeToString(b)
}

// aclUser is what ACL GETUSER says about a user's passwords.
type aclUser struct {
	flags     []string
	passwords []string // SHA-256 hashes, hex
}

func (u aclUser) has(flag string) bool {
	for _, f := range u.flags {
		if f == flag {
			return true
		}
	}
	return false
}

func (u aclUser) hasPassword(hash string) bool {
	for _, h := range u.passwords {
		if h == hash {
			return true
		}
	}
	return false
}

// getUser runs ACL GETUSER; exists is false for an unknown user.
func (s *session) getUser(ctx context.Context, name string) (u aclUser, exists bool, err error) {
	v, err := s.c.Do(ctx, "ACL", "GETUSER", name).Result()
	if errors.Is(err, goredis.Nil) {
		return u, false, nil
	}
	if err != nil {
		return u, false, fmt.Errorf("ACL GETUSER %q as %q on %s: %w", name, s.user, s.addr, safeErr(err))
	}
	l, ok := v.([]any)
	if !ok || len(l)%2 != 0 {
		return u, false, fmt.Errorf("ACL GETUSER %q on %s: unexpected answer", name, s.addr)
	}
	for i := 0; i < len(l); i += 2 {
		list, _ := l[i+1].([]any)
		switch fmt.Sprint(l[i]) {
		case "flags":
			for _, f := range list {
				u.flags = append(u.flags, fmt.Sprint(f))
			}
		case "passwords":
			for _, h := range list {
				u.passwords = append(u.passwords, fmt.Sprint(h))
			}
		}
	}
	return u, true, nil
}

// setUser runs ACL SETUSER name with modifiers (password hashes only), then
// persists the users with ACL SAVE when the server has an ACL file.
func (s *session) setUser(ctx context.Context, name string, mods []string) error {
	if len(mods) == 0 {
		return nil
	}
	args := []any{"ACL", "SETUSER", name}
	for _, m := range mods {
		args = append(args, m)
	}
	if err := s.c.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("ACL SETUSER %q as %q on %s: %w", name, s.user, s.addr, safeErr(err))
	}
	err := s.c.Do(ctx, "ACL", "SAVE").Err()
	if err != nil && !strings.Contains(err.Error(), "not configured to use an ACL file") {
		return fmt.Errorf("the passwords of %q changed in memory but ACL SAVE failed on %s, so a restart would undo them; rotation will retry: %w", name, s.addr, safeErr(err))
	}
	return nil
}
