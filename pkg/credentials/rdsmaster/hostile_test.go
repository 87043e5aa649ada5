package rdsmaster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// TestValidateRefusesMalformedSecrets: each malformed field is named, with
// the fix, and the password is never quoted.
func TestValidateRefusesMalformedSecrets(t *testing.T) {
	const pw = "Zq9-secret-Value-42"
	base := `{"engine":"postgres","host":"db.example","port":5432,"username":"admin","password":"` + pw + `","dbInstanceIdentifier":"orders"}`
	m := New(Config{})
	for _, tc := range []struct {
		name, value, want string
	}{
		{"no identifier", withField(t, base, "dbInstanceIdentifier", nil), `"dbInstanceIdentifier" and "dbClusterIdentifier" are both missing`},
		{"both identifiers", withField(t, base, "dbClusterIdentifier", "orders-cluster"), "are both set"},
		{"identifier not a string", withField(t, base, "dbInstanceIdentifier", 42), `"dbInstanceIdentifier" must be a JSON string`},
		{"cluster identifier not a string", withField(t, withField(t, base, "dbInstanceIdentifier", nil), "dbClusterIdentifier", true), `"dbClusterIdentifier" must be a JSON string`},
		{"Aurora engine with an instance", withField(t, base, "engine", "aurora-postgresql"), "set dbClusterIdentifier instead"},
		{"no password", withField(t, base, "password", nil), `"password" is missing`},
		{"password not a string", withField(t, base, "password", 12345678), `"password" must be a JSON string`},
		{"no username", withField(t, base, "username", nil), `"username" is missing`},
		{"unknown engine", withField(t, base, "engine", "oracle-ee"), `"engine"`},
		{"port mistyped", withField(t, base, "port", "fifty"), `"port"`},
		{"password pasted into host", withField(t, base, "host", pw+" x"), `"host"`},
		{"not JSON", "{", "not a JSON object"},
	} {
		err := m.Validate(context.Background(), rotation.Version{ID: "v1", Value: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%s: the error quotes the password", tc.name)
		}
	}
	if err := m.Validate(context.Background(), rotation.Version{ID: "v1", Value: base}); err != nil {
		t.Fatalf("a good secret: %v", err)
	}
}

// failingTest makes testSecret fail after a real setSecret, as a database
// that refuses the new password or a check that times out would, keeping
// the type's Restore.
type failingTest struct {
	rotation.Credential
	rotation.Restorer
}

func (failingTest) Test(context.Context, rotation.TestRequest) error {
	return errors.New("injected: testSecret failed")
}

// rotateExpectingFailure rotates and returns the rotation's error.
func rotateExpectingFailure(t *testing.T, e *rotationtest.Env, arn string) string {
	t.Helper()
	_, err := e.Rotate(t, arn)
	if err == nil {
		t.Fatal("the rotation succeeded; want it refused")
	}
	return err.Error()
}

// TestHostileDatabases: a secret for a database the type must not touch
// is refused with the reason before any change: the master password stays
// AWSCURRENT's (it still logs in) and RDS applied nothing.
func TestHostileDatabases(t *testing.T) {
	s := pgStack(t)
	my := myStack(t)
	// A MariaDB instance the PostgreSQL secret's identifier will name.
	myValue := my.database(t, false, nil)
	myID, myUser := field(t, myValue, "dbInstanceIdentifier"), field(t, myValue, "username")
	// The same MariaDB instance, in the account of the PostgreSQL secret.
	s.rds.AddInstance(rdslocal.Instance{Identifier: myID, Engine: my.engine, Address: my.host, Port: my.port, MasterUsername: myUser,
		SetMasterPassword: func(ctx context.Context, pw string) error { return my.setPassword(ctx, myUser, pw) }})
	cases := []struct {
		name    string
		value   func(t *testing.T) string
		want    string
		applied string // the RDS resource that must see no change
	}{
		{"unknown instance", func(t *testing.T) string {
			return withField(t, s.database(t, false, nil), "dbInstanceIdentifier", "no-such-db")
		}, "DBInstanceNotFound", ""},
		{"unknown cluster", func(t *testing.T) string {
			return withField(t, s.database(t, true, nil), "dbClusterIdentifier", "no-such-cluster")
		}, "DBClusterNotFoundFault", ""},
		{"RDS-managed master (instance)", func(t *testing.T) string {
			return s.database(t, false, func(i *rdslocal.Instance, _ *rdslocal.Cluster) {
				i.MasterUserSecretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1-AbCdEf"
			})
		}, "ManageMasterUserPassword turned on", "self"},
		{"RDS-managed master (cluster)", func(t *testing.T) string {
			return s.database(t, true, func(_ *rdslocal.Instance, c *rdslocal.Cluster) {
				c.MasterUserSecretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1-AbCdEf"
			})
		}, "ManageMasterUserPassword turned on", "self"},
		{"identifier of another engine", func(t *testing.T) string {
			return withField(t, s.database(t, false, nil), "dbInstanceIdentifier", myID)
		}, `runs engine "mariadb"`, myID},
		{"user that is not the master", func(t *testing.T) string {
			return s.database(t, false, func(i *rdslocal.Instance, _ *rdslocal.Cluster) { i.MasterUsername = "postgres" })
		}, `the master user of DB instance`, "self"},
		{"Aurora member instance", func(t *testing.T) string {
			return s.database(t, false, func(i *rdslocal.Instance, _ *rdslocal.Cluster) { i.ClusterIdentifier = "the-cluster" })
		}, "set dbClusterIdentifier", "self"},
		{"endpoint elsewhere", func(t *testing.T) string {
			return s.database(t, false, func(i *rdslocal.Instance, _ *rdslocal.Cluster) { i.Address = "other.example" })
		}, "point host and port at the database's endpoint", "self"},
		{"port elsewhere", func(t *testing.T) string {
			return s.database(t, false, func(i *rdslocal.Instance, _ *rdslocal.Cluster) { i.Port++ })
		}, "point host and port at the database's endpoint", "self"},
		{"cluster endpoint elsewhere", func(t *testing.T) string {
			return s.database(t, true, func(_ *rdslocal.Instance, c *rdslocal.Cluster) { c.Endpoint = "writer.other.example" })
		}, "point host and port at the database's endpoint", "self"},
		{"reader endpoint of the cluster", func(t *testing.T) string {
			return s.database(t, true, func(_ *rdslocal.Instance, c *rdslocal.Cluster) {
				c.ReaderEndpoint, c.Endpoint = c.Endpoint, "writer.example"
			})
		}, "the cluster's writer endpoint", "self"},
	}
	cred := New(s.config(true))
	var value string
	e := rotationtest.NewEnv(t, rotationtest.Subject{
		Credential: cred,
		NewSecret:  func(t *testing.T, _ *secretsmanager.Client) string { return value },
		Check:      s.login, Refused: s.refused,
		Corrupt: func(v string) string { return v },
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			value = tc.value(t)
			arn, old := e.NewSecret(t)
			msg := rotateExpectingFailure(t, e, arn)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("the rotation's error does not say %q: %s", tc.want, msg)
			}
			if strings.Contains(msg, field(t, old, "password")) {
				t.Fatal("the rotation's error quotes AWSCURRENT's password")
			}
			if _, cur, _ := e.Value(t, arn, rotation.LabelCurrent); cur != old {
				t.Fatal("AWSCURRENT changed")
			}
			if err := s.login(context.Background(), old); err != nil {
				t.Fatalf("AWSCURRENT no longer logs in after the refused rotation: %v", err)
			}
			id := tc.applied
			if id == "self" {
				id = field(t, old, "dbInstanceIdentifier") + field(t, old, "dbClusterIdentifier")
			}
			if id != "" {
				if n := s.rds.Applied(id) + my.rds.Applied(id); n != 0 {
					t.Fatalf("RDS applied %d master password changes to %s; want none", n, id)
				}
			}
			if rotationtest.Leaks(e.Logs(), field(t, old, "password")) {
				t.Fatal("the logs hold AWSCURRENT's password")
			}
		})
	}
	if err := my.login(context.Background(), myValue); err != nil {
		t.Fatalf("the MariaDB master named by the PostgreSQL secret no longer logs in: %v", err)
	}
}

// TestWrongPasswordRefused: the probe of a version with a wrong password is
// refused by the server, on both engines.
func TestWrongPasswordRefused(t *testing.T) {
	for name, s := range map[string]*stack{"postgres": pgStack(t), "mariadb": myStack(t)} {
		t.Run(name, func(t *testing.T) {
			value := s.database(t, false, nil)
			wrong := withField(t, value, "password", field(t, value, "password")+"x")
			p := New(s.config(true)).(rotation.Prober)
			ctx := context.Background()
			if err := p.Probe(ctx, rotation.ProbeRequest{Version: rotation.Version{ID: "v2", Value: wrong}, Current: rotation.Version{ID: "v1", Value: value}}); !errors.Is(err, rotation.ErrRefused) {
				t.Fatalf("probe of a wrong password: %v, want it refused", err)
			}
			if err := s.login(ctx, wrong); !s.refused(err) {
				t.Fatalf("login with a wrong password: %v, want it refused", err)
			}
			if err := p.Probe(ctx, rotation.ProbeRequest{Version: rotation.Version{ID: "v1", Value: value}, Current: rotation.Version{ID: "v1", Value: value}}); err != nil {
				t.Fatalf("probe of the right password: %v", err)
			}
		})
	}
}

// TestFailureBetweenSetAndFinishRestoresCurrent: when testSecret fails
// after setSecret changed the master password, the engine's Restore puts
// AWSCURRENT's password back through the RDS API, so applications log in
// with AWSCURRENT while the rotation is retried; a later rotation works.
// Without a network path too, where Restore cannot log in to check.
func TestFailureBetweenSetAndFinishRestoresCurrent(t *testing.T) {
	for _, tc := range []struct {
		name           string
		stack          func(*testing.T) *stack
		cluster, login bool
	}{
		{"postgres-instance-no-login", pgStack, false, false},
		{"mariadb-cluster-no-login", myStack, true, false},
		{"mariadb-instance-login", myStack, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.stack(t)
			cred := New(s.config(tc.login))
			subject := rotationtest.Subject{
				Credential: failingTest{cred, cred.(rotation.Restorer)},
				NewSecret:  func(t *testing.T, _ *secretsmanager.Client) string { return s.database(t, tc.cluster, nil) },
				Check:      s.login, Refused: s.refused,
				Corrupt: func(v string) string { return v },
			}
			e := rotationtest.NewEnv(t, subject)
			arn, old := e.NewSecret(t)
			id := field(t, old, "dbInstanceIdentifier") + field(t, old, "dbClusterIdentifier")
			msg := rotateExpectingFailure(t, e, arn)
			if !strings.Contains(msg, "was restored downstream") {
				t.Fatalf("the error does not say AWSCURRENT was restored: %s", msg)
			}
			// setSecret set the pending password, the restore put AWSCURRENT's back.
			if n := s.rds.Applied(id); n < 2 {
				t.Fatalf("RDS applied %d changes, want the pending password and then AWSCURRENT's", n)
			}
			pendID := ""
			for v, labels := range e.Versions(t, arn) {
				for _, l := range labels {
					if l == rotation.LabelPending {
						pendID = v
					}
				}
			}
			out, err := e.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(pendID)})
			if err != nil {
				t.Fatal(err)
			}
			pending := aws.ToString(out.SecretString)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.login(ctx, old); err != nil {
				t.Fatalf("AWSCURRENT does not log in after the failed rotation: %v", err)
			}
			if err := s.login(ctx, pending); !s.refused(err) {
				t.Fatalf("the failed rotation's pending password: %v, want it refused", err)
			}
			for _, secret := range []string{field(t, old, "password"), field(t, pending, "password")} {
				if rotationtest.Leaks(msg, secret) || rotationtest.Leaks(e.Logs(), secret) {
					t.Fatal("a password is in the rotation's error or the logs")
				}
			}
		})
	}
}
