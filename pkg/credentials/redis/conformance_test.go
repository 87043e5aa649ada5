package redis

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// TestConformanceACLUserSelf: the user changes its own passwords, over
// plaintext (the secret says "ssl": false).
func TestConformanceACLUserSelf(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redisserver.Options{})
	rotationtest.Run(t, rotationtest.Subject{
		Credential: NewACLUser(configFor(s)),
		NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
			user, pw := uniqueName("app_"), randomPassword(t)
			redistest.CreateUser(t, s, user, pw, append([]string{"~app:*", "+get"}, selfRules...)...)
			return secretFor(s, user, pw, map[string]any{"unknownField": map[string]any{"kept": true}, "port": s.Port})
		},
		Check:   check(s),
		Corrupt: corrupt(t),
		Refused: refused,
	})
}

// TestConformanceACLUserMaster: an admin user (the master secret) changes
// a user that may run only PING, over TLS verified with the test CA, on a
// server with an ACL file.
func TestConformanceACLUserMaster(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redisserver.Options{TLS: true, ACLFile: true})
	admin, adminPW := uniqueName("admin_"), randomPassword(t)
	redistest.CreateUser(t, s, admin, adminPW, "+ping", "+acl|getuser", "+acl|setuser", "+acl|save")
	rotationtest.Run(t, rotationtest.Subject{
		Credential: NewACLUser(configFor(s)),
		NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
			user, pw := uniqueName("app_"), randomPassword(t)
			redistest.CreateUser(t, s, user, pw)
			arn := storeMaster(t, sm, jsonOf(map[string]any{"username": admin, "password": adminPW}))
			return secretFor(s, user, pw, map[string]any{"masterarn": arn, "port": "" + itoa(s.Port)})
		},
		Check:        check(s),
		Corrupt:      corrupt(t),
		Refused:      refused,
		MasterNotRDS: true,
	})
}
