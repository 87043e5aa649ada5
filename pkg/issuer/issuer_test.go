package issuer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

var cluster = pgtest.NewShared(pgcluster.Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	_ = cluster.Close()
	os.Exit(code)
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(`{"app-read":{"engine":"postgres","masterarn":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:m-AbC","baseUser":"app_ro"},
		"ops":{"engine":"mysql","masterarn":"ops/master","baseUser":"ops","defaultTtl":"5m","maxTtl":"30m"},
		"short":{"engine":"postgres","masterarn":"m","baseUser":"b","maxTtl":"10m"},
		"longest-pg":{"engine":"postgres","masterarn":"m","baseUser":"` + strings.Repeat("a", 45) + `"},
		"longest-my":{"engine":"mysql","masterarn":"m","baseUser":"` + strings.Repeat("é", 62) + `"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Roles["app-read"]; time.Duration(r.DefaultTTL) != DefaultTTL || time.Duration(r.MaxTTL) != DefaultMaxTTL || r.Name != "app-read" {
		t.Errorf("app-read = %+v; want the default lifetimes", r)
	}
	if r := c.Roles["short"]; time.Duration(r.DefaultTTL) != 10*time.Minute {
		t.Errorf("a role whose maxTtl is below the default TTL gets defaultTtl %s; want its maxTtl", time.Duration(r.DefaultTTL))
	}
	ops := c.Roles["ops"]
	for ttl, want := range map[string]string{"": "5m0s", "30m": "30m0s", "1s": "1s"} {
		if d, err := ops.TTL(ttl); err != nil || d.String() != want {
			t.Errorf("TTL(%q) = %s, %v; want %s", ttl, d, err, want)
		}
	}
	for ttl, msg := range map[string]string{"31m": "above role \"ops\"'s maximum of 30m0s", "500ms": "below the minimum", "soon": "not a Go duration", "-1h": "below the minimum"} {
		if _, err := ops.TTL(ttl); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("TTL(%q) = %v; want an error saying %q", ttl, err, msg)
		}
	}
	for name, tc := range map[string]struct{ raw, msg string }{
		"empty":            {``, "is not set"},
		"not an object":    {`[1]`, "not a JSON object of roles"},
		"no roles":         {`{}`, "names no role"},
		"bad role name":    {`{"a b":{}}`, `role name "a b"`},
		"unknown field":    {`{"r":{"engine":"postgres","masterarn":"m","baseUser":"b","ttl":"1h"}}`, `unknown field "ttl"`},
		"no engine":        {`{"r":{"masterarn":"m","baseUser":"b"}}`, `"engine" is missing`},
		"bad engine":       {`{"r":{"engine":"oracle","masterarn":"m","baseUser":"b"}}`, `"engine" is "oracle"`},
		"no masterarn":     {`{"r":{"engine":"mysql","baseUser":"b"}}`, `"masterarn"`},
		"other service":    {`{"r":{"engine":"mysql","masterarn":"arn:aws:s3:::bucket","baseUser":"b"}}`, `"masterarn"`},
		"no base":          {`{"r":{"engine":"mysql","masterarn":"m"}}`, `"baseUser" is missing`},
		"default over max": {`{"r":{"engine":"mysql","masterarn":"m","baseUser":"b","defaultTtl":"2h","maxTtl":"1h"}}`, `"defaultTtl" is 2h0m0s`},
		"max too long":     {`{"r":{"engine":"mysql","masterarn":"m","baseUser":"b","maxTtl":"200h"}}`, `"maxTtl" is 200h0m0s`},
		"bad duration":     {`{"r":{"engine":"mysql","masterarn":"m","baseUser":"b","maxTtl":"1 day"}}`, `"1 day" is not a Go duration`},
		"pg base too long": {`{"r":{"engine":"postgres","masterarn":"m","baseUser":"` + strings.Repeat("é", 23) + `"}}`, "use a base user of at most 45"},
		"my base too long": {`{"r":{"engine":"mysql","masterarn":"m","baseUser":"` + strings.Repeat("a", 63) + `"}}`, "use a base user of at most 62"},
	} {
		_, err := ConfigFromEnv(func(string) string { return tc.raw })
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v; want ErrConfig saying %q", name, err, tc.msg)
		}
	}
}

// syncLog is a log buffer safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// newIssuer returns an issuer with roles, reading master secrets from a
// local Secrets Manager (returned), logging through the scrubber to log.
func newIssuer(t *testing.T, roles string) (*Issuer, *secretsmanager.Client, *syncLog) {
	t.Helper()
	cfg, err := ParseConfig(roles)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := smlocal.New(smlocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	log := &syncLog{}
	db := dbsecret.DefaultConfig()
	return &Issuer{
		Config: cfg, Secrets: smlocal.NewClient(hs.URL, "us-east-1"), Passwords: password.DefaultPolicy(), FunctionName: "test",
		Backends: Backends(postgres.Config{DB: db}, mysql.Config{DB: db}),
		Log:      slog.New(rotation.NewScrubHandler(slog.NewJSONHandler(log, nil))),
	}, smlocal.NewClient(hs.URL, "us-east-1"), log
}

var alice = &events.LambdaFunctionURLRequestContextAuthorizerDescription{IAM: &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{
	UserARN: "arn:aws:iam::123456789012:user/alice", AccessKey: "AKIAALICE", AccountID: "123456789012", CallerID: "AIDAALICE",
}}

func urlRequest(method, body string, auth *events.LambdaFunctionURLRequestContextAuthorizerDescription) json.RawMessage {
	ev := events.LambdaFunctionURLRequest{Version: "2.0", RawPath: "/", Body: body, RequestContext: events.LambdaFunctionURLRequestContext{
		RequestID: "req-1", Authorizer: auth, HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, Path: "/"},
	}}
	b, _ := json.Marshal(ev)
	return b
}

func serve(t *testing.T, is *Issuer, payload json.RawMessage) (int, map[string]any) {
	t.Helper()
	out, err := is.Handle(context.Background(), payload)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	resp, ok := out.(events.LambdaFunctionURLResponse)
	if !ok {
		t.Fatalf("Handle answered a function URL event with %T", out)
	}
	if resp.Headers["Cache-Control"] != "no-store" || resp.Headers["Content-Type"] != "application/json" {
		t.Errorf("response headers %v; want JSON, no-store", resp.Headers)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	return resp.StatusCode, body
}

// TestRefusals: what the function refuses before it reads any secret or
// reaches a database, with the status and a message saying why.
func TestRefusals(t *testing.T) {
	is, _, log := newIssuer(t, `{"r":{"engine":"postgres","masterarn":"nowhere","baseUser":"b","maxTtl":"1h"}}`)
	for name, tc := range map[string]struct {
		payload json.RawMessage
		status  int
		msg     string
	}{
		"no IAM caller":     {urlRequest("POST", `{"role":"r"}`, nil), 403, "AWS_IAM"},
		"GET":               {urlRequest("GET", ``, alice), 405, "POST a JSON body"},
		"bad JSON":          {urlRequest("POST", `{"role":`, alice), 400, "not a JSON object"},
		"unknown field":     {urlRequest("POST", `{"role":"r","user":"root"}`, alice), 400, `unknown field "user"`},
		"no role":           {urlRequest("POST", `{"ttl":"1h"}`, alice), 400, `"role" is missing`},
		"unknown role":      {urlRequest("POST", `{"role":"x"}`, alice), 404, `no role "x" is configured; the roles are r`},
		"TTL over max":      {urlRequest("POST", `{"role":"r","ttl":"2h"}`, alice), 400, "above role \"r\"'s maximum of 1h0m0s"},
		"TTL not a dur":     {urlRequest("POST", `{"role":"r","ttl":"1 hour"}`, alice), 400, "not a Go duration"},
		"master unreadable": {urlRequest("POST", `{"role":"r"}`, alice), 500, "the function's log says why (request id req-1)"},
	} {
		status, body := serve(t, is, tc.payload)
		if status != tc.status || !strings.Contains(body["message"].(string), tc.msg) {
			t.Errorf("%s: HTTP %d %v; want %d saying %q", name, status, body, tc.status, tc.msg)
		}
	}
	// A base64 body (a client sending another content type) is decoded.
	ev := events.LambdaFunctionURLRequest{Version: "2.0", Body: base64.StdEncoding.EncodeToString([]byte(`{"role":"x"}`)), IsBase64Encoded: true,
		RequestContext: events.LambdaFunctionURLRequestContext{Authorizer: alice, HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "POST"}}}
	b, _ := json.Marshal(ev)
	if status, _ := serve(t, is, b); status != 404 {
		t.Errorf("a base64 body naming an unknown role: HTTP %d; want 404", status)
	}
	if !strings.Contains(log.String(), `"msg":"credential refused"`) || !strings.Contains(log.String(), `"caller":"arn:aws:iam::123456789012:user/alice"`) ||
		!strings.Contains(log.String(), "read the master secret nowhere") {
		t.Errorf("the refusals' log lines lack the caller or the reason:\n%s", log)
	}
	for name, tc := range map[string]struct{ payload, msg string }{
		"unknown action":       {`{"rotary":"drop-all"}`, `"rotary" is "drop-all"`},
		"revoke without role":  {`{"rotary":"revoke-leases"}`, "name the role"},
		"revoke unknown role":  {`{"rotary":"revoke-leases","role":"x"}`, `no role "x"`},
		"neither URL nor ours": {`{"Step":"createSecret"}`, "unknown event"},
		"not an object":        {`[]`, "not a JSON object"},
	} {
		if _, err := is.Handle(context.Background(), json.RawMessage(tc.payload)); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v; want one saying %q", name, err, tc.msg)
		}
	}
}

func unique(prefix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func putSecret(t *testing.T, sm *secretsmanager.Client, name string, v map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if _, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(b))}); err != nil {
		t.Fatal(err)
	}
}

func pgLogin(ctx context.Context, c *pgcluster.Cluster, user, pw string) error {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database, cfg.TLSConfig, cfg.Fallbacks = c.Host, uint16(c.Port), user, pw, "postgres", nil, nil
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// TestRolesAreApart: two roles on one base user, expired and live users
// of each, a rotation's expiring user of the same base and a role of a
// similar name that Rotary did not create: leases, reap and revoke of one
// role touch its own issued users only, and a bad master password is
// never logged.
func TestRolesAreApart(t *testing.T) {
	c := cluster.Get(t)
	ctx := context.Background()
	base, master, masterPW := unique("ib"), unique("im"), "M-"+unique("pw")+"-secret"
	pgtest.CreateRole(t, c, base, "B-"+unique("pw"), "")
	pgtest.CreateRole(t, c, master, masterPW, "CREATEROLE")
	admin, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "GRANT pg_signal_backend TO "+master); err != nil {
		t.Fatal(err)
	}
	family := func() []string {
		rows, _ := admin.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1", base+"_")
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		return names
	}
	t.Cleanup(func() { _ = c.DropRoles(ctx, family()...) })
	is, sm, log := newIssuer(t, `{"a":{"engine":"postgres","masterarn":"m","baseUser":"`+base+`","maxTtl":"1h"},
		"b":{"engine":"postgres","masterarn":"m","baseUser":"`+base+`","maxTtl":"1h"},
		"wrong":{"engine":"postgres","masterarn":"wrong","baseUser":"`+base+`"},
		"nobase":{"engine":"postgres","masterarn":"m","baseUser":"`+base+`_none"}}`)
	masterSecret := map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": master, "password": masterPW, "ssl": false}
	putSecret(t, sm, "m", masterSecret)
	masterSecret["password"] = masterPW + "-wrong"
	putSecret(t, sm, "wrong", masterSecret)

	// A rotation's expiring user of the base, already expired, and a
	// role named like an issued user without Rotary's marker.
	m, err := dbsecret.Parse(`{"engine":"postgres","host":"` + c.Host + `","port":` + jsonInt(c.Port) + `,"username":"` + master + `","password":"` + masterPW + `","ssl":false}`)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := postgres.Config{DB: dbsecret.DefaultConfig()}.OpenAdmin(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	rotUser, _ := postgres.ExpiringUserName(base, time.Now().Add(-time.Hour))
	if err := pa.CreateExpiringUser(ctx, postgres.ExpiringUserSpec{Name: rotUser, Base: base, Origin: dbsecret.OriginRotation("arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"), Password: "R-" + unique("pw"), ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	pa.Close(ctx)
	foreign, _ := postgres.ExpiringUserName(base, time.Now().Add(-2*time.Hour))
	pgtest.CreateRole(t, c, foreign, "F-"+unique("pw"), "IN ROLE "+base+" VALID UNTIL '2000-01-01'")

	caller := Caller{ARN: "arn:aws:iam::123456789012:user/alice"}
	a1, err := is.Issue(ctx, caller, "a", "3s")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := is.Issue(ctx, caller, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	b1, err := is.Issue(ctx, caller, "b", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if err := pgLogin(ctx, c, a2.Username, a2.Password); err != nil {
		t.Fatalf("an issued credential does not log in: %v", err)
	}
	leases, err := is.Leases(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// (Both were created in the same second, the names' resolution, so
	// their order is not known.)
	if names := leaseNames(leases); len(leases) != 2 || !strings.Contains(names, a1.Username) || !strings.Contains(names, a2.Username) {
		t.Fatalf("leases of a = %+v; want %s and %s", leases, a1.Username, a2.Username)
	}
	// Every role: the leases of a and b, and the failure of wrong.
	out, err := is.Operate(ctx, OperatorEvent{Rotary: ActionLeases})
	if err != nil || len(out.Leases) != 3 || len(out.Errors) != 1 || !strings.Contains(out.Errors[0], `role "wrong"`) {
		t.Fatalf("leases of every role = %+v, %v; want 3 leases and role wrong's failure", out, err)
	}
	time.Sleep(time.Until(a1.ExpiresAt) + time.Second)
	reaped, err := is.Reap(ctx, "a")
	if err != nil || len(reaped) != 1 || reaped[0].Username != a1.Username {
		t.Fatalf("reap of a = %+v, %v; want %s only", reaped, err, a1.Username)
	}
	want := []string{a2.Username, b1.Username, rotUser, foreign}
	for _, name := range want {
		if !strings.Contains(strings.Join(family(), " "), name) {
			t.Errorf("reaping role a dropped %s, which is not an expired user of a", name)
		}
	}
	revoked, err := is.Revoke(ctx, "a")
	if err != nil || len(revoked) != 1 || revoked[0].Username != a2.Username {
		t.Fatalf("revoke of a = %+v, %v; want %s only", revoked, err, a2.Username)
	}
	if err := pgLogin(ctx, c, a2.Username, a2.Password); err == nil {
		t.Error("a revoked credential still logs in")
	}
	got := strings.Join(family(), " ")
	for _, name := range []string{b1.Username, rotUser, foreign} {
		if !strings.Contains(got, name) {
			t.Errorf("revoking role a dropped %s, which role a did not issue", name)
		}
	}
	if strings.Contains(got, a1.Username) || strings.Contains(got, a2.Username) {
		t.Errorf("users of role a remain after reap and revoke: %s", got)
	}
	// Issuing for b reaps b's expired user first.
	b2, err := is.Issue(ctx, caller, "b", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(family(), " "); strings.Contains(got, b1.Username) || !strings.Contains(got, b2.Username) || !strings.Contains(got, rotUser) {
		t.Errorf("after issuing for b: users %s; want b's expired %s reaped, %s and the rotation's %s kept", got, b1.Username, b2.Username, rotUser)
	}

	// A master secret with a wrong password: 500, and neither password in the log.
	status, body := serve(t, is, urlRequest("POST", `{"role":"wrong"}`, alice))
	if status != 500 || !strings.Contains(body["message"].(string), "request id") {
		t.Errorf("a master that cannot log in: HTTP %d %v; want 500 naming the request id", status, body)
	}
	// A base user that does not exist: 500, nothing created, the log says so.
	before := strings.Join(family(), " ")
	if status, _ := serve(t, is, urlRequest("POST", `{"role":"nobase"}`, alice)); status != 500 {
		t.Errorf("a role whose base user does not exist: HTTP %d; want 500", status)
	}
	if after := strings.Join(family(), " "); after != before {
		t.Errorf("a role whose base user does not exist created users: %s, before %s", after, before)
	}
	if !strings.Contains(log.String(), `does not exist on the server`) {
		t.Errorf("the log does not say the base user is missing:\n%s", log)
	}
	if !strings.Contains(log.String(), "log in with the master secret") {
		t.Errorf("the log does not say the master could not log in:\n%s", log)
	}
	for _, pw := range []string{masterPW, masterPW + "-wrong", a1.Password, a2.Password, b1.Password, b2.Password} {
		if rotationtest.Leaks(log.String(), pw) {
			t.Fatalf("a password appears in the log:\n%s", log)
		}
	}
	if n := strings.Count(log.String(), `"msg":"credential issued"`); n != 4 {
		t.Errorf("%d audit lines for 4 credentials", n)
	}
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestServeURLIssues: a signed request through the handler gets a
// credential that logs in, and the password is only in the response.
func TestServeURLIssues(t *testing.T) {
	c := cluster.Get(t)
	ctx := context.Background()
	base, master, masterPW := unique("ib"), unique("im"), "M-"+unique("pw")
	pgtest.CreateRole(t, c, base, "B-"+unique("pw"), "")
	pgtest.CreateRole(t, c, master, masterPW, "CREATEROLE")
	is, sm, log := newIssuer(t, `{"r":{"engine":"postgres","masterarn":"m","baseUser":"`+base+`"}}`)
	putSecret(t, sm, "m", map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": master, "password": masterPW, "ssl": false})
	status, body := serve(t, is, urlRequest(http.MethodPost, `{"role":"r","ttl":"5m"}`, alice))
	if status != 200 {
		t.Fatalf("HTTP %d %v", status, body)
	}
	user, pw := body["username"].(string), body["password"].(string)
	t.Cleanup(func() { _ = c.DropRoles(ctx, user) })
	if err := pgLogin(ctx, c, user, pw); err != nil {
		t.Fatalf("the credential does not log in: %v", err)
	}
	exp, err := time.Parse(time.RFC3339, body["expiresAt"].(string))
	if err != nil || time.Until(exp) > 5*time.Minute || time.Until(exp) < 4*time.Minute {
		t.Errorf("expiresAt %v (%v); want 5 minutes from now", body["expiresAt"], err)
	}
	if rotationtest.Leaks(log.String(), pw) || !strings.Contains(log.String(), user) {
		t.Errorf("the log leaks the password, or has no audit line for %s:\n%s", user, log)
	}
}

func leaseNames(ls []Lease) string {
	var names []string
	for _, l := range ls {
		names = append(names, l.Username)
	}
	return strings.Join(names, " ")
}
