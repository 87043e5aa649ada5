package dbsecret

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const pw = "s3cr3t-P@ss\"'\\word"

func TestParse(t *testing.T) {
	tests := []struct {
		name, value string
		want        Secret // compared field by field when wantErr is empty
		wantErr     string // substring naming the field
	}{
		{name: "rds postgres with numeric port", value: `{"engine":"postgres","host":"db.example.com","port":5432,"username":"app","password":"x","dbname":"orders","unknown":{"kept":1}}`,
			want: Secret{Engine: "postgres", Host: "db.example.com", Port: 5432, Username: "app", Password: "x", DBName: "orders"}},
		{name: "port as numeric string", value: `{"engine":"mysql","host":"h","port":"3307","username":"u","password":"x"}`,
			want: Secret{Engine: "mysql", Host: "h", Port: 3307, Username: "u", Password: "x"}},
		{name: "port absent defaults by family", value: `{"engine":"aurora-postgresql","host":"h","username":"u","password":"x"}`,
			want: Secret{Engine: "aurora-postgresql", Host: "h", Port: 5432, Username: "u", Password: "x"}},
		{name: "mariadb default port", value: `{"engine":"mariadb","host":"h","username":"u","password":"x"}`,
			want: Secret{Engine: "mariadb", Host: "h", Port: 3306, Username: "u", Password: "x"}},
		{name: "alternating users fields", value: `{"engine":"aurora-mysql","host":"h","username":"u","password":"x","masterarn":"arn:m","dbClusterIdentifier":"c","dbInstanceIdentifier":"i"}`,
			want: Secret{Engine: "aurora-mysql", Host: "h", Port: 3306, Username: "u", Password: "x", MasterARN: "arn:m", DBClusterIdentifier: "c", DBInstanceIdentifier: "i"}},
		{name: "not json", value: `{"engine":`, wantErr: "not a JSON object"},
		{name: "json array", value: `[]`, wantErr: "not a JSON object"},
		{name: "missing engine", value: `{"host":"h","username":"u","password":"x"}`, wantErr: `"engine" is missing`},
		{name: "unsupported engine", value: `{"engine":"oracle","host":"h","username":"u","password":"x"}`, wantErr: `"engine" "oracle" is not a supported engine`},
		{name: "engine not a string", value: `{"engine":5,"host":"h","username":"u","password":"x"}`, wantErr: `"engine" must be a JSON string`},
		{name: "missing host", value: `{"engine":"postgres","username":"u","password":"x"}`, wantErr: `"host" is missing`},
		{name: "host with space", value: `{"engine":"postgres","host":"a b","username":"u","password":"x"}`, wantErr: `"host"`},
		{name: "empty username", value: `{"engine":"postgres","host":"h","username":" ","password":"x"}`, wantErr: `"username" is empty`},
		{name: "username with NUL", value: `{"engine":"postgres","host":"h","username":"a\u0000b","password":"x"}`, wantErr: `"username" contains a control character`},
		{name: "missing password", value: `{"engine":"postgres","host":"h","username":"u"}`, wantErr: `"password" is missing`},
		{name: "password not a string", value: `{"engine":"postgres","host":"h","username":"u","password":123}`, wantErr: `"password" must be a JSON string`},
		{name: "port out of range", value: `{"engine":"postgres","host":"h","port":70000,"username":"u","password":"x"}`, wantErr: `"port"`},
		{name: "port fractional", value: `{"engine":"postgres","host":"h","port":54.5,"username":"u","password":"x"}`, wantErr: `"port"`},
		{name: "port words", value: `{"engine":"postgres","host":"h","port":"five","username":"u","password":"x"}`, wantErr: `"port"`},
		{name: "port object", value: `{"engine":"postgres","host":"h","port":{},"username":"u","password":"x"}`, wantErr: `"port"`},
		{name: "dbname not a string", value: `{"engine":"postgres","host":"h","username":"u","password":"x","dbname":1}`, wantErr: `"dbname"`},
		{name: "ssl bad", value: `{"engine":"postgres","host":"h","username":"u","password":"x","ssl":"maybe"}`, wantErr: `"ssl"`},
		{name: "masterarn not a string", value: `{"engine":"postgres","host":"h","username":"u","password":"x","masterarn":false}`, wantErr: `"masterarn"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidSecret) {
					t.Fatalf("Parse() error = %v, want one containing %q wrapping ErrInvalidSecret", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			got.SSL = nil
			if *got != tt.want {
				t.Fatalf("Parse() = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestParseNeverQuotesPassword(t *testing.T) {
	values := []string{
		`{"engine":"postgres","host":"h","username":"u","password":"` + strings.ReplaceAll(strings.ReplaceAll(pw, `\`, `\\`), `"`, `\"`) + `","port":"x"}`,
		`{"engine":"postgres","host":"h","username":"u","password":"` + strings.ReplaceAll(strings.ReplaceAll(pw, `\`, `\\`), `"`, `\"`) + `","ssl":"maybe"}`,
		`{"engine":"postgres","host":"h","username":"u","password":"` + strings.ReplaceAll(strings.ReplaceAll(pw, `\`, `\\`), `"`, `\"`) + "\\u0000\"}",
		`{"engine":"postgres","host":"h","username":"u","password":"` + strings.ReplaceAll(strings.ReplaceAll(pw, `\`, `\\`), `"`, `\"`),
	}
	for i, v := range values {
		_, err := Parse(v)
		if err == nil {
			t.Fatalf("value %d: Parse() succeeded, want an error", i)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("value %d: error quotes the password", i)
		}
	}
}

func TestParseSSL(t *testing.T) {
	tests := []struct {
		name, ssl string
		plaintext bool
		isNil     bool
	}{
		{"absent means verified TLS", "", false, true},
		{"null means verified TLS", `,"ssl":null`, false, true},
		{"true", `,"ssl":true`, false, false},
		{"string true", `,"ssl":"true"`, false, false},
		{"false allows plaintext", `,"ssl":false`, true, false},
		{"string FALSE allows plaintext", `,"ssl":"FALSE"`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(`{"engine":"postgres","host":"h","username":"u","password":"x"` + tt.ssl + `}`)
			if err != nil {
				t.Fatal(err)
			}
			if s.PlaintextAllowed() != tt.plaintext || (s.SSL == nil) != tt.isNil {
				t.Fatalf("PlaintextAllowed() = %v, SSL nil = %v; want %v, %v", s.PlaintextAllowed(), s.SSL == nil, tt.plaintext, tt.isNil)
			}
			cfg, err := DefaultConfig().TLS(s)
			if err != nil {
				t.Fatal(err)
			}
			if (cfg == nil) != tt.plaintext {
				t.Fatalf("TLS() nil = %v, want %v", cfg == nil, tt.plaintext)
			}
			if cfg != nil && (cfg.ServerName != "h" || cfg.InsecureSkipVerify || cfg.MinVersion < 0x0303) {
				t.Fatalf("TLS() = ServerName %q, InsecureSkipVerify %v, MinVersion %x; want full verification of h, TLS 1.2+", cfg.ServerName, cfg.InsecureSkipVerify, cfg.MinVersion)
			}
		})
	}
}

func TestFamilyAndDatabase(t *testing.T) {
	tests := []struct{ engine, dbname, family, db string }{
		{"postgres", "", FamilyPostgres, "postgres"},
		{"aurora-postgresql", "app", FamilyPostgres, "app"},
		{"mysql", "", FamilyMySQL, ""},
		{"mariadb", "x", FamilyMySQL, "x"},
		{"aurora-mysql", "", FamilyMySQL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			s := &Secret{Engine: tt.engine, DBName: tt.dbname}
			if s.Family() != tt.family || s.Database() != tt.db {
				t.Fatalf("Family, Database = %q, %q; want %q, %q", s.Family(), s.Database(), tt.family, tt.db)
			}
		})
	}
}

func TestCheckSameTarget(t *testing.T) {
	base := Secret{Engine: "postgres", Host: "db.example.com", Port: 5432, Username: "app", Password: "a"}
	tests := []struct {
		name    string
		change  func(*Secret)
		wantErr string
	}{
		{"same target, new user and password", func(s *Secret) { s.Username, s.Password = "app_clone", "b" }, ""},
		{"host case differs only", func(s *Secret) { s.Host = "DB.example.com" }, ""},
		{"explicit default dbname", func(s *Secret) { s.DBName = "postgres" }, ""},
		{"other host", func(s *Secret) { s.Host = "evil.example.com" }, `"host"`},
		{"other port", func(s *Secret) { s.Port = 5433 }, `"port"`},
		{"other engine", func(s *Secret) { s.Engine = "mysql" }, `"engine"`},
		{"other dbname", func(s *Secret) { s.DBName = "other" }, `"dbname"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, pend := base, base
			tt.change(&pend)
			err := CheckSameTarget(&cur, &pend)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSameTarget() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckSameTarget() = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestCheckPending(t *testing.T) {
	yes, no := true, false
	base := Secret{Engine: "postgres", Host: "db.example.com", Port: 5432, Username: "app", Password: "a", MasterARN: "arn:master"}
	tests := []struct {
		name    string
		cur     func(*Secret)
		pend    func(*Secret)
		wantErr string
	}{
		{"same target, new user and password", nil, func(s *Secret) { s.Username, s.Password = "app_clone", "b" }, ""},
		{"absent ssl and ssl true are both verified TLS", nil, func(s *Secret) { s.SSL = &yes }, ""},
		{"both allow plaintext", func(s *Secret) { s.SSL = &no }, func(s *Secret) { s.SSL = &no }, ""},
		{"pending turns TLS off", nil, func(s *Secret) { s.SSL = &no }, `"ssl"`},
		{"pending turns TLS on", func(s *Secret) { s.SSL = &no }, nil, `"ssl"`},
		{"other master secret", nil, func(s *Secret) { s.MasterARN = "arn:other" }, `"masterarn"`},
		{"other host (CheckSameTarget)", nil, func(s *Secret) { s.Host = "evil.example.com" }, `"host"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, pend := base, base
			for _, c := range []struct {
				s      *Secret
				change func(*Secret)
			}{{&cur, tt.cur}, {&pend, tt.pend}} {
				if c.change != nil {
					c.change(c.s)
				}
			}
			err := CheckPending(&cur, &pend)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckPending() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSecret) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckPending() = %v, want ErrInvalidSecret naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{"defaults", nil, Config{ConnectTimeout: 5 * time.Second, StatementTimeout: 30 * time.Second}, ""},
		{"set", map[string]string{EnvConnectTimeout: "2s", EnvStatementTimeout: "1m"}, Config{ConnectTimeout: 2 * time.Second, StatementTimeout: time.Minute}, ""},
		{"not a duration", map[string]string{EnvConnectTimeout: "5"}, Config{}, EnvConnectTimeout},
		{"too short", map[string]string{EnvStatementTimeout: "10ms"}, Config{}, EnvStatementTimeout},
		{"too long", map[string]string{EnvConnectTimeout: "1h"}, Config{}, EnvConnectTimeout},
		{"missing bundle", map[string]string{EnvCABundle: filepath.Join(dir, "nope.pem")}, Config{}, EnvCABundle},
		{"bundle without certificates", map[string]string{EnvCABundle: notPEM}, Config{}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
					t.Fatalf("ConfigFromEnv() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ConfigFromEnv() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSecretNeverPrintsPassword(t *testing.T) {
	s, err := Parse(`{"engine":"postgres","host":"h","username":"u","password":"hunter2-secret"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{s, *s} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, "hunter2") || !strings.Contains(out, "password redacted") {
				t.Fatalf("Sprintf(%q) = %q, want the password redacted", verb, out)
			}
		}
	}
}

// TestParseNeverQuotesPasswordInAnotherField: the engine, host and port
// errors quote the field's value, which may hold the password (pasted into
// the wrong field, or fields shifted by a broken tool). Found by FuzzParse's
// property that no error shows the input's password.
func TestParseNeverQuotesPasswordInAnotherField(t *testing.T) {
	for _, v := range []string{
		`{"engine":"postgres","host":"db fz-secret-77","username":"u","password":"fz-secret-77"}`,
		`{"engine":"fz-secret-77","host":"h","username":"u","password":"fz-secret-77"}`,
		`{"engine":"postgres","host":"h","username":"u","password":"fz-secret-77","port":"fz-secret-77"}`,
		`{"engine":"postgres","host":"h","username":"u","password":"fz\tsecret-77","port":"fz\tsecret-77"}`,
	} {
		_, err := Parse(v)
		if err == nil || !errors.Is(err, ErrInvalidSecret) {
			t.Fatalf("Parse() = %v, want ErrInvalidSecret", err)
		}
		if msg := err.Error(); strings.Contains(msg, "secret-77") || !strings.Contains(msg, "the value is not shown") {
			t.Fatalf("error shows the password or does not say why the value is hidden: %s", strings.ReplaceAll(msg, "secret-77", "<LEAKED>"))
		}
	}
	if _, err := Parse(`{"engine":"postgres","host":"a b","username":"u","password":"fz-secret-77"}`); err == nil || !strings.Contains(err.Error(), `"a b"`) {
		t.Fatalf("a host without the password is no longer quoted: %v", err)
	}
}
