package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrStillValid is wrapped when an old credential of the secret still logs
// in and Revoke cannot make the server refuse it.
var ErrStillValid = errors.New("an old MySQL credential still logs in")

var (
	_ rotation.Revoker = (*SingleUser)(nil)
	_ rotation.Revoker = (*MultiUser)(nil)
)

// sessionsGone bounds how long Revoke waits for the connections it killed
// to leave the process list.
const sessionsGone = 10 * time.Second

// Revoke makes sure that AWSCURRENT logs in and that AWSPREVIOUS's password
// no longer does for the secret's user. A MariaDB or MySQL account normally
// has one password, so after a rotation the previous one is refused
// already. If the server still accepts it (a second authentication method
// on MariaDB, a retained secondary password on MySQL 8), Revoke sets the
// account's password to AWSCURRENT's again, logged in as the user the way
// Set does (on MySQL 8 also discarding the secondary password), and proves
// it once more, failing with ErrStillValid when that does not help. It does
// not kill open connections: they belong to the same account as the
// connections applications opened with AWSCURRENT and cannot be told apart.
// An AWSPREVIOUS for another user or server is refused before anything is
// changed. It is safe to call twice.
func (su *SingleUser) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := validate(ctx, req.Current)
	if err != nil {
		return err
	}
	probe, err := dbsecret.PreviousCredential(ctx, req.Previous, cur, func(user string) error {
		if user != cur.Username {
			return fmt.Errorf("%w: field \"username\" of AWSPREVIOUS is %q, not the secret's user %q; single-user revoke changes only %q's password, so it changes nothing: change %q's password by hand, then remove the AWSPREVIOUS label and revoke again",
				dbsecret.ErrInvalidSecret, user, cur.Username, cur.Username, user)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s, err := open(ctx, su.cfg.DB, target{secret: cur, username: cur.Username, password: cur.Password, dbname: cur.DBName})
	if err != nil {
		return currentRefused(err)
	}
	defer s.Close()
	if s.user != cur.Username {
		return fmt.Errorf("logging in as %q with AWSCURRENT matched the account %q@%q (an anonymous or proxy account), so revoke changes nothing; drop the anonymous account or fix the secret's username", cur.Username, s.user, s.host)
	}
	if probe == nil {
		return nil // no other password of the user is stored
	}
	err = su.cfg.refused(ctx, "AWSPREVIOUS's password", probe)
	if !errors.Is(err, ErrStillValid) {
		return err
	}
	if err := s.setOwnPassword(ctx, cur.Password, cur.Password); err != nil {
		return fmt.Errorf("AWSPREVIOUS's password still logs in; set the password of %q@%q to AWSCURRENT's again: %w", s.user, s.host, err)
	}
	if !s.mariadb {
		// MySQL 8 keeps a secondary password (RETAIN CURRENT PASSWORD)
		// through a password change until it is discarded.
		if _, err := s.exec(ctx, "ALTER USER USER() DISCARD OLD PASSWORD"); err != nil {
			return fmt.Errorf("AWSPREVIOUS's password still logs in; discard the secondary password of %q@%q (the account needs APPLICATION_PASSWORD_ADMIN, or an admin runs ALTER USER ... DISCARD OLD PASSWORD): %w", s.user, s.host, err)
		}
	}
	if err := su.cfg.refused(ctx, "AWSPREVIOUS's password", probe); err != nil {
		if errors.Is(err, ErrStillValid) {
			return fmt.Errorf("%w even after the password of %q@%q was set to AWSCURRENT's again: the account accepts it another way (MariaDB: a second authentication method, IDENTIFIED VIA ... OR ... in SHOW CREATE USER, which a user cannot change for itself); have an admin give the account one password (ALTER USER ... IDENTIFIED BY AWSCURRENT's), then revoke again", err, s.user, s.host)
		}
		return err
	}
	if err := testLogin(ctx, su.cfg, cur); err != nil {
		return fmt.Errorf("AWSCURRENT no longer logs in after revoke: %w", err)
	}
	return nil
}

// Revoke makes the other user of the pair (the one AWSCURRENT does not
// name) unusable: the master gives it a fresh random password that nobody
// stores (keeping the account's authentication plugin, and on MariaDB
// sending only the hash) and, unless Config.KeepSessionsOnRevoke is set,
// kills its open connections, since the server checks a password only when
// a connection starts. Then it proves that AWSPREVIOUS's password is refused
// and that AWSCURRENT still logs in. AWSCURRENT's user is logged in as,
// never changed, and its connections are left alone.
//
// Before any change it makes the checks Set makes (user names, the master
// secret is for the same server and is not one of the pair, AWSCURRENT logs
// in, proving the secret owns the pair), refuses an AWSPREVIOUS outside the
// pair or for another server, checks that the server refuses a wrong
// password for the other user (else a new password would revoke nothing:
// ErrStillValid) and, when it will kill connections, that the master may
// (PROCESS, and CONNECTION ADMIN or SUPER, or RDS's mysql.rds_kill). A pair
// whose other user was never created has nothing to change. It is safe to
// call twice.
func (mu *MultiUser) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	if err := mu.Validate(ctx, req.Current); err != nil {
		return err
	}
	cur, err := validate(ctx, req.Current)
	if err != nil {
		return err
	}
	base, clone := dbsecret.Pair(cur.Username)
	otherUser := dbsecret.Other(cur.Username)
	probe, err := dbsecret.PreviousCredential(ctx, req.Previous, cur, func(user string) error {
		if !dbsecret.InPair(cur.Username, user) {
			return fmt.Errorf("%w: field \"username\" of AWSPREVIOUS is %q, outside the pair %q/%q; revoke changes only the pair's passwords, so it changes nothing: change %q's password by hand, then remove the AWSPREVIOUS label and revoke again",
				dbsecret.ErrInvalidSecret, user, base, clone, user)
		}
		return nil
	})
	if err != nil {
		return err
	}
	master, err := mu.master(ctx, req.Secrets, cur)
	if err != nil {
		return err
	}
	host, err := mu.currentHost(ctx, cur)
	if err != nil {
		return fmt.Errorf("revoke changes nothing: %w", err)
	}
	prevCred := probe // AWSPREVIOUS's user and password, also checked at other hosts below
	if probe != nil && probe.Username == cur.Username {
		// An older password of the current user: revoke never changes the
		// current user, so it must already be refused.
		if err := mu.cfg.refused(ctx, "AWSPREVIOUS's password", probe); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w, although it differs from AWSCURRENT's for the same user (a second authentication method on MariaDB, a retained secondary password on MySQL 8); revoke never changes AWSCURRENT's user, so it changes nothing: give %q one password, then revoke again", err, cur.Username)
			}
			return err
		}
		probe = nil
	}
	admin, err := mu.openAdmin(ctx, master, cur, req.Current.ID)
	if err != nil {
		return err
	}
	defer admin.Close()
	if prevCred != nil {
		// Revoke changes only the pair's accounts at AWSCURRENT's host; an
		// account of the same user at another host that takes AWSPREVIOUS's
		// password would keep it valid from clients there.
		hosts, err := admin.hostsWithPassword(ctx, prevCred.Username, host, prevCred.Password)
		if err != nil {
			return err
		}
		if len(hosts) > 0 {
			return fmt.Errorf("%w: AWSPREVIOUS's password is also the password of %q at host(s) %s, which revoke does not change (it changes only the pair's accounts at %q), so it changes nothing: change or drop those accounts, then revoke again",
				ErrStillValid, prevCred.Username, strings.Join(hosts, ", "), host)
		}
	}
	exists, err := admin.accountExists(ctx, otherUser, host)
	if err != nil {
		return err
	}
	var plugin string
	if exists {
		if plugin, err = admin.plugin(ctx, otherUser, host); err != nil {
			return err
		}
		if _, err := admin.identifiedBy(plugin, rand.Text()); err != nil {
			return fmt.Errorf("%q@%q: %w; revoke changes nothing", otherUser, host, err)
		}
		// A server that does not check passwords for the other user would
		// defeat a new password: refuse before changing it.
		anyPassword := *cur
		anyPassword.Username, anyPassword.Password = otherUser, rand.Text()
		if err := mu.cfg.refused(ctx, "a random password", &anyPassword); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w: the server does not check passwords for %q (an authentication plugin that ignores them), so a new password would revoke nothing and revoke changes nothing; fix the account, then revoke again", err, otherUser)
			}
			return err
		}
	}
	var kill func(ctx context.Context, id int64) error
	if exists && !mu.cfg.KeepSessionsOnRevoke {
		if kill, err = admin.killer(ctx, master.Username); err != nil {
			return err
		}
	}
	if exists {
		clause, err := admin.identifiedBy(plugin, rand.Text())
		if err != nil {
			return err
		}
		if err := admin.execSecret(ctx, fmt.Sprintf("give %q@%q a new random password", otherUser, host), "ALTER USER "+admin.account(otherUser, host)+" "+clause); err != nil {
			return fmt.Errorf("revoke changed nothing: %w", err)
		}
		if !admin.mariadb {
			// MySQL 8 keeps a secondary password (RETAIN CURRENT PASSWORD)
			// through a password change until it is discarded.
			if _, err := admin.exec(ctx, "ALTER USER "+admin.account(otherUser, host)+" DISCARD OLD PASSWORD"); err != nil {
				return fmt.Errorf("discard the secondary password of %q@%q (its password is already changed; revoke again to retry): %w", otherUser, host, err)
			}
		}
	}
	if kill != nil {
		if err := admin.endSessions(ctx, otherUser, kill); err != nil {
			return err
		}
	}
	if probe != nil {
		if err := mu.cfg.refused(ctx, "AWSPREVIOUS's password", probe); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w even after the master gave %q@%q a new random password: the server accepts it another way (an account of that user at another host, or a proxy); fix that, then revoke again", err, otherUser, host)
			}
			return err
		}
	}
	if err := testLogin(ctx, mu.cfg, cur); err != nil {
		return fmt.Errorf("AWSCURRENT no longer logs in after revoke: %w", err)
	}
	return nil
}

// currentRefused explains an AWSCURRENT that does not log in.
func currentRefused(err error) error {
	if errors.Is(err, ErrLogin) {
		return fmt.Errorf("AWSCURRENT does not log in, so revoke changes nothing; rotate the secret (or restore AWSCURRENT) first: %w", err)
	}
	return fmt.Errorf("log in with AWSCURRENT, so revoke changes nothing: %w", err)
}

// refused proves that s no longer logs in: nil when the server refuses the
// login, ErrStillValid when it logs in, another error when the server cannot
// be asked (network, TLS, too many connections). It logs in without a
// database, so that a missing database grant is not taken for a refused
// password. what names the credential.
func (c Config) refused(ctx context.Context, what string, s *dbsecret.Secret) error {
	sess, err := open(ctx, c.DB, target{secret: s, username: s.Username, password: s.Password})
	switch {
	case err == nil:
		acct := sess.user + "@" + sess.host
		sess.Close()
		return fmt.Errorf("%w: %s still logs in as %q (the server matched %s) on %s:%d", ErrStillValid, what, s.Username, acct, s.Host, s.Port)
	case errors.Is(err, ErrLogin):
		return nil
	default:
		return fmt.Errorf("prove that %s is refused: %w", what, err)
	}
}

// hostsWithPassword returns the quoted hosts, other than host, at which
// user has an account whose stored mysql_native_password hash is pw's.
// Accounts using other plugins store salted hashes (or none) and cannot be
// compared; they are not returned.
func (s *session) hostsWithPassword(ctx context.Context, user, host, pw string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.conn.QueryContext(ctx, "SELECT Host, plugin, authentication_string FROM mysql.user WHERE User = ? AND Host <> ? ORDER BY Host", user, host)
	if err != nil {
		return nil, fmt.Errorf("look up the accounts of %q at other hosts in mysql.user: %w", user, err)
	}
	defer rows.Close()
	want := nativeHash(pw)
	var hosts []string
	for rows.Next() {
		var h, plugin string
		var auth []byte
		if err := rows.Scan(&h, &plugin, &auth); err != nil {
			return nil, fmt.Errorf("look up the accounts of %q at other hosts in mysql.user: %w", user, err)
		}
		if isNative(plugin) && strings.EqualFold(string(auth), want) {
			hosts = append(hosts, strconv.Quote(h))
		}
	}
	return hosts, rows.Err()
}

// killer returns how the master kills another user's connection, after
// checking that it may: PROCESS to see them, and CONNECTION ADMIN
// (CONNECTION_ADMIN on MySQL 8) or SUPER to kill them, or on RDS, where the
// master has neither, the mysql.rds_kill procedure. Without them it refuses
// before any change.
func (s *session) killer(ctx context.Context, masterUser string) (func(context.Context, int64) error, error) {
	privs, err := s.queryStrings(ctx, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?", "'"+s.user+"'@'"+s.host+"'")
	if err != nil {
		return nil, fmt.Errorf("read the global privileges of the master user %q: %w", masterUser, err)
	}
	has := func(names ...string) bool {
		return slices.ContainsFunc(privs, func(p string) bool {
			return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(p, n) })
		})
	}
	refuse := func(missing string) error {
		return fmt.Errorf("%w: the master user %q lacks %s, so it cannot kill the other user's open connections and revoke changes nothing; grant it what it lacks (GRANT PROCESS, CONNECTION ADMIN ON *.* on MariaDB, CONNECTION_ADMIN on MySQL 8; on RDS, PROCESS and EXECUTE on mysql.rds_kill), or set %s=true to leave open connections running",
			rotation.ErrRevokeRefused, masterUser, missing, EnvRevokeKeepSessions)
	}
	if !has("PROCESS") {
		return nil, refuse("PROCESS (to see other users' connections)")
	}
	if has("SUPER", "CONNECTION ADMIN", "CONNECTION_ADMIN") {
		return func(ctx context.Context, id int64) error {
			_, err := s.exec(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10))
			return err
		}, nil
	}
	var n int
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_NAME = 'rds_kill' AND ROUTINE_TYPE = 'PROCEDURE'").Scan(&n); err != nil {
		return nil, fmt.Errorf("look for the procedure mysql.rds_kill: %w", err)
	}
	if n == 0 {
		return nil, refuse("CONNECTION ADMIN and SUPER (to kill other users' connections), and the server has no mysql.rds_kill")
	}
	return func(ctx context.Context, id int64) error {
		_, err := s.exec(ctx, "CALL mysql.rds_kill(?)", id)
		return err
	}, nil
}

// endSessions kills every connection of user (never the caller's own) and
// waits until they are gone, killing again any that got in meanwhile (a
// login already past the password check when the password changed).
func (s *session) endSessions(ctx context.Context, user string, kill func(context.Context, int64) error) error {
	deadline := time.Now().Add(sessionsGone)
	for {
		ids, err := s.sessionIDs(ctx, user)
		if err != nil {
			return fmt.Errorf("list the open connections of %q (its password is already changed; revoke again to retry): %w", user, err)
		}
		if len(ids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d connections of %q were still open %s after being killed (its password is already changed); revoke again to retry", len(ids), user, sessionsGone)
		}
		for _, id := range ids {
			if err := kill(ctx, id); err != nil && !isUnknownThread(err) {
				return fmt.Errorf("kill connection %d of %q (its password is already changed; revoke again to retry): %w", id, user, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the connections of %q to end: %w", user, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sessionIDs returns the connection IDs of user other than this session's,
// including connections being killed (KILL takes effect at the next check).
func (s *session) sessionIDs(ctx context.Context, user string) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.conn.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID() ORDER BY ID", user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id sql.NullInt64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if id.Valid {
			ids = append(ids, id.Int64)
		}
	}
	return ids, rows.Err()
}

// isUnknownThread reports a KILL of a connection that has already ended.
func isUnknownThread(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1094 // ER_NO_SUCH_THREAD
}
