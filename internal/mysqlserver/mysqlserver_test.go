package mysqlserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/testpki"
)

// TestStartWithTLS starts a server with TLS and checks a verified TLS
// connection works and a wrong password is refused.
func TestStartWithTLS(t *testing.T) {
	ca, err := testpki.NewCA("rotary mysqlserver test CA")
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
	s := mysqltest.Start(t, mysqlserver.Options{CAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key, SQLMode: "NO_BACKSLASH_ESCAPES"})
	var mode string
	if err := s.Root.QueryRow("SELECT @@GLOBAL.sql_mode").Scan(&mode); err != nil || mode != "NO_BACKSLASH_ESCAPES" {
		t.Fatalf("sql_mode %q, %v; want NO_BACKSLASH_ESCAPES", mode, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, tc := range []struct {
		name     string
		password string
		wantOK   bool
	}{{"right password", s.AdminPassword, true}, {"wrong password", s.AdminPassword + "x", false}} {
		t.Run(tc.name, func(t *testing.T) {
			mc := mysql.NewConfig()
			mc.Net, mc.Addr, mc.User, mc.Passwd = "tcp", s.Addr(), s.AdminUser, tc.password
			mc.TLS = &tls.Config{RootCAs: pool, ServerName: "localhost"}
			connector, err := mysql.NewConnector(mc)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(connector)
			defer db.Close()
			var cipher string
			err = db.QueryRow("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'").Scan(&cipher)
			if tc.wantOK && (err != nil || cipher == "") {
				t.Fatalf("TLS session: cipher %q, %v", cipher, err)
			}
			if !tc.wantOK && err == nil {
				t.Fatal("a wrong password logged in")
			}
		})
	}
}

// TestLogin: Login accepts the right password over verified TLS and refuses
// a wrong one, a wrong host name and an untrusted CA.
func TestLogin(t *testing.T) {
	s := mysqltest.Start(t, mysqlserver.Options{TestCA: true})
	caFile := s.CAFile
	mysqltest.CreateUser(t, s, "login_user", "%", `pa'ss\word`)
	other, _ := testpki.NewCA("another CA")
	otherFile := t.TempDir() + "/other.pem"
	if err := os.WriteFile(otherFile, other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	value := func(host, pw string) string {
		b, _ := json.Marshal(map[string]any{"host": host, "port": s.Port, "username": "login_user", "password": pw})
		return string(b)
	}
	tests := []struct {
		name    string
		value   string
		ca      string
		wantErr string // empty: Login succeeds
	}{
		{"right password", value("localhost", `pa'ss\word`), caFile, ""},
		{"wrong password", value("localhost", "password"), caFile, "Error 1045"},
		{"wrong host name", value("127.0.0.1", `pa'ss\word`), caFile, "certificate"},
		{"untrusted CA", value("localhost", `pa'ss\word`), otherFile, "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := mysqlserver.Login(context.Background(), tc.value, tc.ca)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Login: %v, want success", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Login: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
