package mysql

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/testpki"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// tlsServer starts a throwaway MariaDB with TLS on, a certificate for the
// name "localhost" only from a test CA, and sql_mode NO_BACKSLASH_ESCAPES.
// It returns the server (secrets name host "localhost" and do not allow
// plaintext) and a Config that trusts the test CA.
func tlsServer(t *testing.T) (*testServer, Config) {
	t.Helper()
	ca, err := testpki.NewCA("rotary mysql test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	files, err := testpki.WriteFiles(t.TempDir(), ca, cert)
	if err != nil {
		t.Fatal(err)
	}
	s := mysqltest.Start(t, mysqlserver.Options{CAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key,
		SQLMode: "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES"})
	ts := &testServer{host: "localhost", port: s.Port, root: s.Root, extra: map[string]any{},
		adminUser: s.AdminUser, adminPassword: s.AdminPassword, noBackslash: true}
	return ts, Config{DB: dbsecret.Config{CABundlePath: files.CA}}
}

// TestTLS: verification succeeds with the CA bundle and fails without it or
// on a wrong host name; a failed rotation leaves the old password working.
func TestTLS(t *testing.T) {
	ts, cfg := tlsServer(t)
	tests := []struct {
		name    string
		cfg     Config
		host    string
		ssl     any
		wantErr string
	}{
		{name: "verified with the CA bundle", cfg: cfg, host: "localhost"},
		{name: "CA not trusted", cfg: Config{}, host: "localhost", wantErr: "certificate signed by unknown authority"},
		{name: "wrong host name", cfg: cfg, host: "127.0.0.1", wantErr: "doesn't contain any IP SANs"},
		{name: "ssl false allows plaintext", cfg: Config{}, host: "127.0.0.1", ssl: false},
		{name: "ssl \"true\" verifies", cfg: cfg, host: "localhost", ssl: "true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, oldPW, newPW := uniqueName("rt_tls_"), randomPassword(t), randomPassword(t)
			ts.createUser(t, user, "%", oldPW)
			cur := withField(t, ts.secret(user, oldPW, nil), "host", tc.host)
			if tc.ssl != nil {
				cur = withField(t, cur, "ssl", tc.ssl)
			}
			su := NewSingleUser(tc.cfg)
			_, err := rotateSingle(t, su, cur, "", newPW)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("rotate: %v", err)
				}
				ts.mustLogin(t, cfg, user, newPW)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("rotate: %v; want an error containing %q", err, tc.wantErr)
			}
			ts.mustLogin(t, cfg, user, oldPW)
		})
	}
}

// TestPlaintextRefused: the shared server has TLS off; a secret without
// "ssl": false must not fall back to plaintext.
func TestPlaintextRefused(t *testing.T) {
	ts := sharedServer(t)
	for _, ssl := range []any{nil, true, "true"} {
		t.Run(strings.TrimSpace(strings.ReplaceAll(fmtAny(ssl), `"`, "'")), func(t *testing.T) {
			user, oldPW := uniqueName("rt_plain_"), randomPassword(t)
			ts.createUser(t, user, "%", oldPW)
			cur := withField(t, ts.secret(user, oldPW, nil), "ssl", ssl)
			su := NewSingleUser(Config{})
			_, err := rotateSingle(t, su, cur, "", randomPassword(t))
			if err == nil || !strings.Contains(err.Error(), "over TLS with full verification") {
				t.Fatalf("rotate: %v; want a TLS error", err)
			}
			ts.mustLogin(t, Config{}, user, oldPW)
		})
	}
}

func fmtAny(v any) string {
	switch v := v.(type) {
	case nil:
		return "ssl absent"
	case bool:
		if v {
			return "ssl true"
		}
		return "ssl false"
	case string:
		return "ssl string " + v
	}
	return "?"
}

// TestTLSServerRotations rotates both types over verified TLS on a server
// whose sql_mode has NO_BACKSLASH_ESCAPES, with passwords holding every
// punctuation character, and a base user that REQUIREs SSL.
func TestTLSServerRotations(t *testing.T) {
	ts, cfg := tlsServer(t)
	punct := `!"#$%&'()*+,-./:;<=>?@[\]^_` + "`{|}~" + `\'`
	t.Run("single user", func(t *testing.T) {
		user, oldPW := uniqueName("rt_nbe_"), randomPassword(t)
		ts.createUser(t, user, "%", oldPW)
		su := NewSingleUser(cfg)
		if _, err := rotateSingle(t, su, ts.secret(user, oldPW, nil), "", punct); err != nil {
			t.Fatalf("rotate: %v", err)
		}
		ts.mustLogin(t, cfg, user, punct)
		ts.mustNotLogin(t, cfg, user, oldPW)
	})
	t.Run("alternating users with REQUIRE SSL", func(t *testing.T) {
		f := newMultiFixture(t, ts, cfg, "%", "GRANT SELECT ON DB.*")
		f.sql(t, "ALTER USER ACCT REQUIRE SSL WITH MAX_USER_CONNECTIONS 7")
		var once sync.Once
		for i := 1; i <= 3; i++ {
			if err := f.rotate(t); err != nil {
				t.Fatalf("rotation %d: %v", i, err)
			}
			f.canSelect(t, f.value)
			f.canSelect(t, f.prev)
			f.sameGrants(t)
			once.Do(func() {
				// Punctuation in the clone's password too.
				cur, _ := creds(t, f.value)
				pend := withField(t, withField(t, f.value, "username", dbsecret.Other(cur)), "password", punct)
				if err := f.mu.Set(context.Background(), setRequest(f.value, pend, f.prev, f.st)); err != nil {
					t.Fatalf("set a punctuation password: %v", err)
				}
				f.prev, f.value = f.value, pend
				f.canSelect(t, f.value)
			})
		}
	})
}
