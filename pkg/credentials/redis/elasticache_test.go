package redis

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// ecFixture is a TLS redis-server behind a local ElastiCache API: the
// replication group "orders" (user group "orders-users") is the server,
// and "billing" (user group "billing-users") is another group on the
// same server, so that only the API can tell the users apart.
type ecFixture struct {
	redis *redisserver.Server
	api   *elasticachelocal.Server
	ec    *elasticache.Client
	cfg   Config
}

func newECFixture(t *testing.T) *ecFixture {
	t.Helper()
	s := redistest.Start(t, redisserver.Options{TLS: true})
	api := elasticachelocal.New()
	api.Delay = 30 * time.Millisecond
	api.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: "orders", Host: s.Host, Port: s.Port, UserGroupIDs: []string{"orders-users"}, Redis: s.Admin})
	api.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: "billing", Host: "billing.example.internal", Port: 6379, UserGroupIDs: []string{"billing-users"}})
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	ec := elasticache.New(elasticache.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", ""),
	})
	cfg := configFor(s)
	cfg.NewElastiCache = func(context.Context) (ElastiCacheAPI, error) { return ec, nil }
	cfg.PollInterval = 10 * time.Millisecond
	cfg.WaitActive = 10 * time.Second
	// A change the waits never see (a slow poll after the short delay)
	// counts as applied after 2s, well within the wait.
	cfg.Settle = 2 * time.Second
	return &ecFixture{redis: s, api: api, ec: ec, cfg: cfg}
}

// user creates an ElastiCache user in userGroup with one password and
// returns its secret value.
func (f *ecFixture) user(t *testing.T, userGroup string) (id, value string) {
	t.Helper()
	id = uniqueName("app-")
	name := strings.ReplaceAll(id, "-", "_")
	pw := randomPassword(t)
	if err := f.api.AddUser(context.Background(), elasticachelocal.User{UserID: id, UserName: name, AccessString: "on ~app:* +get +ping", UserGroupIDs: []string{userGroup}}, pw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.redis.DeleteUser(context.Background(), name) })
	return id, secretFor(f.redis, name, pw, map[string]any{"user_arn": elasticachelocal.UserARN(id), "replication_group_id": "orders"})
}

func TestConformanceElastiCacheUser(t *testing.T) {
	t.Parallel()
	f := newECFixture(t)
	rotationtest.Run(t, rotationtest.Subject{
		Credential: NewElastiCacheUser(f.cfg),
		NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
			_, v := f.user(t, "orders-users")
			return v
		},
		Check:   check(f.redis),
		Corrupt: corrupt(t),
		Refused: refused,
	})
}

// TestElastiCacheTwoPasswords: setSecret leaves the user with AWSCURRENT's
// and AWSPENDING's passwords, through the modifying status; afterwards the
// one before AWSPREVIOUS is refused.
func TestElastiCacheTwoPasswords(t *testing.T) {
	t.Parallel()
	f := newECFixture(t)
	_, v0 := f.user(t, "orders-users")
	e := rotationtest.NewEnv(t, rotationtest.Subject{Credential: NewElastiCacheUser(f.cfg), NewSecret: func(*testing.T, *secretsmanager.Client) string { return v0 }, Check: check(f.redis)})
	arn, _ := e.NewSecret(t)
	for range 2 {
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatal(err)
		}
	}
	_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
	_, prev, _ := e.Value(t, arn, rotation.LabelPrevious)
	user := mustUsername(cur)
	if got, want := hashes(t, f.redis, user), hashesOf(cur, prev); !slices.Equal(got, want) {
		t.Fatalf("the user has %d passwords, want AWSCURRENT's and AWSPREVIOUS's", len(got))
	}
	if err := redisserver.Login(context.Background(), v0, f.redis.CAFile); !errors.Is(err, redisserver.ErrRefused) {
		t.Fatalf("the first password still logs in after two rotations: %v", err)
	}
	if n := countCalls(f.api.Calls(), "ModifyUser"); n != 2 {
		t.Fatalf("ModifyUser was called %d times for two rotations", n)
	}
}

func mustUsername(v string) string {
	s, err := Parse(v)
	if err != nil {
		panic(err)
	}
	return s.Username
}

func countCalls(calls []string, action string) int {
	n := 0
	for _, c := range calls {
		if c == action {
			n++
		}
	}
	return n
}

// TestElastiCacheHostile: secrets naming a user of another replication
// group, an unknown user, another endpoint, a malformed ARN, or a wrong
// user name are refused before any ModifyUser.
func TestElastiCacheHostile(t *testing.T) {
	t.Parallel()
	f := newECFixture(t)
	ctx := context.Background()
	ec := NewElastiCacheUser(f.cfg)
	goodID, good := f.user(t, "orders-users")
	// The same user name in the other group, under another user id.
	otherID := uniqueName("billing-")
	if err := f.api.AddUser(ctx, elasticachelocal.User{UserID: otherID, UserName: mustUsername(good), AccessString: "on ~* +@all", UserGroupIDs: []string{"billing-users"}}, randomPassword(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, value, want string
	}{
		{"user of another replication group", withField(t, good, "user_arn", elasticachelocal.UserARN(otherID)), "no user group of the replication group"},
		{"unknown user", withField(t, good, "user_arn", elasticachelocal.UserARN("nobody")), "UserNotFound"},
		{"user_arn of another account", withField(t, good, "user_arn", strings.Replace(elasticachelocal.UserARN(goodID), ":"+elasticachelocal.Account+":", ":999999999999:", 1)), `the ElastiCache user`},
		{"user_arn of another region", withField(t, good, "user_arn", strings.Replace(elasticachelocal.UserARN(goodID), ":"+elasticachelocal.Region+":", ":eu-west-1:", 1)), `(another account, region or partition)`},
		{"unknown replication group", withField(t, good, "replication_group_id", "nope"), "ReplicationGroupNotFoundFault"},
		{"host of another group", withField(t, good, "replication_group_id", "billing"), "not an endpoint"},
		{"wrong user name", withField(t, good, "username", "someone_else"), `"username" is "someone_else"`},
		{"malformed user_arn", withField(t, good, "user_arn", "user:"+leak), `"user_arn" must be the ARN`},
		{"no user_arn", withField(t, good, "user_arn", nil), `"user_arn" is missing`},
		{"no replication group", withField(t, good, "replication_group_id", nil), `"replication_group_id" is missing`},
		{"short password", withField(t, good, "password", "short"), "16 to 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := countCalls(f.api.Calls(), "ModifyUser")
			pend := withField(t, tc.value, "password", leak+"-pending-123")
			err := ec.Set(ctx, rotation.SetRequest{Current: version("cur", tc.value), Pending: version("pend", pend)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			}
			mustNotLeak(t, err)
			if countCalls(f.api.Calls(), "ModifyUser") != before {
				t.Fatal("ModifyUser was called for a refused secret")
			}
		})
	}
}

// TestElastiCacheLocalLimits: the stand-in refuses what AWS documents,
// through the real SDK client, and reports modifying while it applies.
func TestElastiCacheLocalLimits(t *testing.T) {
	t.Parallel()
	f := newECFixture(t)
	f.api.Delay = 300 * time.Millisecond
	id, v := f.user(t, "orders-users")
	ctx := context.Background()
	pw := passwordOf(t, v)
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	for _, tc := range []struct {
		name      string
		id        string
		passwords []string
		want      string
	}{
		{"three passwords", id, []string{pw, pw + "1", pw + "2"}, "InvalidParameterValue"},
		{"too short", id, []string{"fifteen-chars!!"}, "InvalidParameterValue"},
		{"too long", id, []string{strings.Repeat("x", 129)}, "InvalidParameterValue"},
		{"not printable", id, []string{"sixteen chars  x"}, "InvalidParameterValue"},
		{"unknown user", "nobody", []string{pw}, "UserNotFound"},
	} {
		_, err := f.ec.ModifyUser(ctx, &elasticache.ModifyUserInput{UserId: aws.String(tc.id), Passwords: tc.passwords})
		if code(err) != tc.want {
			t.Errorf("%s: err = %v, want %s", tc.name, err, tc.want)
		}
	}
	if _, err := f.ec.ModifyUser(ctx, &elasticache.ModifyUserInput{UserId: aws.String(id), Passwords: []string{pw, pw + "-second"}}); err != nil {
		t.Fatal(err)
	}
	out, err := f.ec.DescribeUsers(ctx, &elasticache.DescribeUsersInput{UserId: aws.String(id)})
	if err != nil || aws.ToString(out.Users[0].Status) != "modifying" {
		t.Fatalf("right after ModifyUser: %v, %v; want status modifying", out, err)
	}
	if _, err := f.ec.ModifyUser(ctx, &elasticache.ModifyUserInput{UserId: aws.String(id), Passwords: []string{pw}}); code(err) != "InvalidUserState" {
		t.Fatalf("ModifyUser while modifying: %v, want InvalidUserState", err)
	}
	if err := NewElastiCacheUser(f.cfg).waitActive(ctx, f.ec, id); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt32(out.Users[0].Authentication.PasswordCount); got != 2 {
		t.Fatalf("PasswordCount = %d, want 2", got)
	}
	if err := redisserver.Login(ctx, withField(t, v, "password", pw+"-second"), f.redis.CAFile); err != nil {
		t.Fatalf("the second password after the user is active: %v", err)
	}
	short := f.cfg
	short.WaitActive = 50 * time.Millisecond
	f.api.Delay = time.Second
	if _, err := f.ec.ModifyUser(ctx, &elasticache.ModifyUserInput{UserId: aws.String(id), Passwords: []string{pw}}); err != nil {
		t.Fatal(err)
	}
	if err := NewElastiCacheUser(short).waitActive(ctx, f.ec, id); err == nil || !strings.Contains(err.Error(), "still \"modifying\"") {
		t.Fatalf("a bounded wait: %v", err)
	}
}
