package rdsmaster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/smithy-go"

	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrInvalid is wrapped by every error about a secret or a database that
// the type refuses before it changes anything.
var ErrInvalid = errors.New("invalid rds-master secret")

// ErrManaged is wrapped by the refusal of a database whose master password
// RDS manages itself (ManageMasterUserPassword).
var ErrManaged = errors.New("RDS manages this master password")

// ErrNotApplied is wrapped when RDS has not applied a password change
// within the wait.
var ErrNotApplied = errors.New("RDS has not applied the master password change")

// Master rotates the master password of an RDS instance or cluster through
// the RDS API. Built by New; without Config.Login it cannot probe.
type Master struct {
	cfg Config
	pg  *postgres.SingleUser
	my  *mysql.SingleUser
}

// WithLogin is Master for a function that can reach the database: it also
// probes (rotation.Prober).
type WithLogin struct{ *Master }

var (
	_ rotation.Credential    = (*Master)(nil)
	_ rotation.Restorer      = (*Master)(nil)
	_ rotation.PublicFielder = (*Master)(nil)
	_ rotation.Prober        = WithLogin{}
)

// New returns the type: a WithLogin when cfg.Login, else a *Master.
func New(cfg Config) rotation.Credential {
	m := &Master{
		cfg: cfg,
		pg:  postgres.NewSingleUser(postgres.Config{DB: cfg.DB}),
		my:  mysql.NewSingleUser(mysql.Config{DB: cfg.DB}),
	}
	if cfg.Login {
		return WithLogin{m}
	}
	return m
}

// PublicFields names the database secret's fields that are not secret.
func (*Master) PublicFields() []string { return dbsecret.PublicFields() }

// parse decodes a version and checks what the type needs: a database
// secret of a supported engine naming exactly one of dbInstanceIdentifier
// and dbClusterIdentifier.
func parse(label string, v rotation.Version) (*dbsecret.Secret, error) {
	s, err := dbsecret.ParseVersion(v)
	if err == nil {
		err = checkIdentifiers(s)
	}
	if err != nil {
		if label != "" {
			err = fmt.Errorf("%s version %s: %w", label, v.ID, err)
		}
		return nil, err
	}
	return s, nil
}

func checkIdentifiers(s *dbsecret.Secret) error {
	inst, clus := strings.TrimSpace(s.DBInstanceIdentifier), strings.TrimSpace(s.DBClusterIdentifier)
	switch {
	case inst == "" && clus == "":
		return fmt.Errorf("%w: fields \"dbInstanceIdentifier\" and \"dbClusterIdentifier\" are both missing; set dbInstanceIdentifier to the RDS instance, or dbClusterIdentifier to the Aurora or Multi-AZ cluster, whose master password this secret holds", ErrInvalid)
	case inst != "" && clus != "":
		return fmt.Errorf("%w: fields \"dbInstanceIdentifier\" (%q) and \"dbClusterIdentifier\" (%q) are both set; a cluster's master password belongs to the cluster: keep only dbClusterIdentifier (or only dbInstanceIdentifier for an instance outside a cluster)", ErrInvalid, inst, clus)
	case inst != "" && strings.HasPrefix(s.Engine, "aurora-"):
		return fmt.Errorf("%w: field \"engine\" is %q but the secret names an instance (dbInstanceIdentifier %q); an Aurora master password belongs to the cluster: set dbClusterIdentifier instead", ErrInvalid, s.Engine, inst)
	}
	return nil
}

// sameDatabase refuses a version for another user, server or database than cur.
func sameDatabase(cur, other *dbsecret.Secret) error {
	if err := dbsecret.CheckSameTarget(cur, other); err != nil {
		return err
	}
	switch {
	case cur.Username != other.Username:
		return fmt.Errorf("%w: field \"username\" differs between versions (%q, %q); rds-master rotation changes only the password: remove the pending version (AWSPENDING) and rotate again", ErrInvalid, cur.Username, other.Username)
	case cur.DBInstanceIdentifier != other.DBInstanceIdentifier:
		return fmt.Errorf("%w: field \"dbInstanceIdentifier\" differs between versions (%q, %q); remove the pending version (AWSPENDING) and rotate again", ErrInvalid, cur.DBInstanceIdentifier, other.DBInstanceIdentifier)
	case cur.DBClusterIdentifier != other.DBClusterIdentifier:
		return fmt.Errorf("%w: field \"dbClusterIdentifier\" differs between versions (%q, %q); remove the pending version (AWSPENDING) and rotate again", ErrInvalid, cur.DBClusterIdentifier, other.DBClusterIdentifier)
	}
	return nil
}

// Validate checks that v is an rds-master secret.
func (m *Master) Validate(_ context.Context, v rotation.Version) error {
	_, err := parse("", v)
	return err
}

// maxLength is RDS's longest MasterUserPassword for the secret's database:
// 41 characters for a cluster and for MySQL and MariaDB, 128 for a
// PostgreSQL instance.
func maxLength(s *dbsecret.Secret) int {
	if s.DBClusterIdentifier == "" && s.Engine == "postgres" {
		return 128
	}
	return 41
}

// rdsExcluded are the characters RDS refuses in a master password.
const rdsExcluded = `/"@ `

// Generate returns a new password under the function's policy, without the
// characters RDS refuses, and refuses a policy whose length RDS would refuse.
func (m *Master) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	cur, err := parse(rotation.LabelCurrent, req.Current)
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	p := *req.Passwords
	p.ExcludeCharacters += rdsExcluded
	p.IncludeSpace = false
	n := p.Length
	if n == 0 {
		n = 32
	}
	if limit := maxLength(cur); n < 8 || n > limit {
		return rotation.GenerateResponse{}, fmt.Errorf("%w: PASSWORD_LENGTH is %d, but RDS takes a master password of 8 to %d characters for %s; set PASSWORD_LENGTH in that range", ErrInvalid, n, limit, describeKind(cur))
	}
	pw, err := p.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, fmt.Errorf("generate password: %w", err)
	}
	return rotation.GenerateResponse{Changes: map[string]any{"password": pw}}, nil
}

func describeKind(s *dbsecret.Secret) string {
	if s.DBClusterIdentifier != "" {
		return "DB cluster " + s.DBClusterIdentifier
	}
	return s.Engine + " DB instance " + s.DBInstanceIdentifier
}

// Set asks RDS to make the pending password the master password. It first
// waits (bounded) until no master password change is being applied, then,
// with Login, does nothing if the pending password already logs in.
func (m *Master) Set(ctx context.Context, req rotation.SetRequest) error {
	pend, client, done, err := m.checkSet(ctx, req)
	switch {
	case err != nil:
		// Nothing was sent to RDS: the engine need not put AWSCURRENT's
		// password back (without a login, a restore is one more reset).
		return fmt.Errorf("%w; %w", err, rotation.ErrUnchanged)
	case done:
		return nil // a retry: RDS applied it already
	}
	if err := m.setPassword(ctx, client, pend, pend.Password); err != nil {
		return err
	}
	// Wait here, where the time of the call is known, until RDS has
	// applied the change, so that testSecret cannot take a Describe that
	// does not show the change yet for one that shows it done.
	if _, err := m.waitChange(ctx, client, pend, true); err != nil {
		return fmt.Errorf("RDS accepted the pending password but %w", err)
	}
	return nil
}

// checkSet is what Set does before it asks RDS for a change: it returns
// the pending secret and the client, and done when the pending password
// already logs in (with a login). An error means nothing was changed.
func (m *Master) checkSet(ctx context.Context, req rotation.SetRequest) (_ *dbsecret.Secret, _ API, done bool, _ error) {
	cur, err := parse(rotation.LabelCurrent, req.Current)
	if err != nil {
		return nil, nil, false, err
	}
	pend, err := parse(rotation.LabelPending, req.Pending)
	if err != nil {
		return nil, nil, false, err
	}
	if err := dbsecret.CheckPending(cur, pend); err != nil {
		return nil, nil, false, err
	}
	if err := sameDatabase(cur, pend); err != nil {
		return nil, nil, false, err
	}
	client, err := m.client(ctx, req.SecretARN, cur)
	if err != nil {
		return nil, nil, false, err
	}
	// Wait at most half of the time left, so that when RDS is still
	// applying the change the engine's Restore has time to wait for it and
	// put AWSCURRENT's password back.
	wctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Until(dl)/2))
		defer cancel()
	}
	if _, err := m.waitApplied(wctx, client, pend); err != nil {
		return nil, nil, false, err
	}
	if m.cfg.Login {
		err := m.probe(ctx, rotation.ProbeRequest{SecretARN: req.SecretARN, Version: req.Pending, Current: req.Current})
		if err == nil {
			return pend, client, true, nil
		}
		if !errors.Is(err, rotation.ErrRefused) {
			return nil, nil, false, fmt.Errorf("check whether the pending password already works: %w", err)
		}
	}
	return pend, client, false, nil
}

// Test waits (bounded) until RDS reports the change applied: the instance
// (cluster) available with no pending master password. With Login it then
// logs in with the pending password and runs a query.
func (m *Master) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := parse(rotation.LabelPending, req.Pending)
	if err != nil {
		return err
	}
	client, err := m.client(ctx, req.SecretARN, pend)
	if err != nil {
		return err
	}
	if _, err := m.waitApplied(ctx, client, pend); err != nil {
		return err
	}
	if !m.cfg.Login {
		return nil
	}
	if pend.Family() == dbsecret.FamilyPostgres {
		return m.pg.Test(ctx, req)
	}
	return m.my.Test(ctx, req)
}

// Restore puts AWSCURRENT's password back through the RDS API after a
// failed test or finish (see rotation.Restorer). The API needs no old
// password, so it works whatever the database holds. With Login it does
// nothing when AWSCURRENT already logs in, and proves afterwards that it
// does; without Login it cannot tell, so it always sets AWSCURRENT's
// password again and waits until RDS reports it applied.
func (m *Master) Restore(ctx context.Context, req rotation.RestoreRequest) (bool, error) {
	cur, err := parse(rotation.LabelCurrent, req.Current)
	if err != nil {
		return false, err
	}
	pend, err := parse(rotation.LabelPending, req.Pending)
	if err != nil {
		return false, err
	}
	if err := sameDatabase(cur, pend); err != nil {
		return false, err
	}
	client, err := m.client(ctx, req.SecretARN, cur)
	if err != nil {
		return false, err
	}
	// Only a change in flight must end first (RDS refuses another); the
	// database's status otherwise does not matter (backing-up, say).
	if _, err := m.waitNoPending(ctx, client, cur); err != nil {
		return false, err
	}
	probeCur := rotation.ProbeRequest{SecretARN: req.SecretARN, Version: req.Current, Current: req.Current}
	if m.cfg.Login {
		// Skip the change only on proof that AWSCURRENT logs in; a login
		// that cannot tell (the database unreachable, as it may be when
		// testSecret failed) is no reason to leave the pending password.
		if err := m.probe(ctx, probeCur); err == nil {
			return false, nil
		}
	}
	if err := m.setPassword(ctx, client, cur, cur.Password); err != nil {
		return false, err
	}
	if _, err := m.waitChange(ctx, client, cur, false); err != nil {
		return true, fmt.Errorf("RDS accepted AWSCURRENT's password but %w", err)
	}
	if m.cfg.Login {
		if err := m.probe(ctx, probeCur); errors.Is(err, rotation.ErrRefused) {
			return true, fmt.Errorf("RDS applied AWSCURRENT's password, but the database refuses it: %w", err)
		}
	}
	return true, nil
}

// Probe logs in as the master with the version's password over
// AWSCURRENT's connection settings (see rotation.Prober).
func (w WithLogin) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return w.probe(ctx, req)
}

func (m *Master) probe(ctx context.Context, req rotation.ProbeRequest) error {
	cur, err := parse(rotation.LabelCurrent, req.Current)
	if err != nil {
		return err
	}
	if cur.Family() == dbsecret.FamilyPostgres {
		return m.pg.Probe(ctx, req)
	}
	return m.my.Probe(ctx, req)
}

// client returns the RDS API client for a step on the secret secretARN
// whose version s names the database, after checking that the secret is
// bound to that database (Config.Bindings): every RDS call goes through it.
func (m *Master) client(ctx context.Context, secretARN string, s *dbsecret.Secret) (API, error) {
	if err := m.cfg.checkBinding(secretARN, s); err != nil {
		return nil, err
	}
	if m.cfg.NewRDS == nil {
		return nil, errors.New("this function has no RDS API client")
	}
	c, err := m.cfg.NewRDS(ctx)
	if err != nil {
		return nil, fmt.Errorf("build the RDS API client: %w", err)
	}
	return c, nil
}

// target is what RDS says of the secret's database.
type target struct {
	kind, id      string // "DB instance" or "DB cluster", its identifier
	status        string
	pending       bool // a master password change is being applied
	managedSecret string
	engine, user  string
	host          string
	port          int
	member        string // the cluster of an instance
}

func (t target) String() string { return t.kind + " " + t.id }

// describe asks RDS for the secret's database and checks it is the one the
// secret describes and that its master password may be set through the API.
func (m *Master) describe(ctx context.Context, client API, s *dbsecret.Secret) (target, error) {
	var t target
	if s.DBClusterIdentifier != "" {
		t.kind, t.id = "DB cluster", s.DBClusterIdentifier
		out, err := client.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(s.DBClusterIdentifier)})
		if err != nil {
			return t, fmt.Errorf("find DB cluster %q (field \"dbClusterIdentifier\") with DescribeDBClusters: %w; check the identifier and allow rds:DescribeDBClusters on the cluster", s.DBClusterIdentifier, err)
		}
		if len(out.DBClusters) != 1 {
			return t, fmt.Errorf("%w: DescribeDBClusters found %d clusters for %q, want one", ErrInvalid, len(out.DBClusters), s.DBClusterIdentifier)
		}
		c := out.DBClusters[0]
		t.id = aws.ToString(c.DBClusterIdentifier)
		t.status, t.engine, t.user = aws.ToString(c.Status), aws.ToString(c.Engine), aws.ToString(c.MasterUsername)
		t.host, t.port = aws.ToString(c.Endpoint), int(aws.ToInt32(c.Port))
		t.pending = c.PendingModifiedValues != nil && c.PendingModifiedValues.MasterUserPassword != nil
		if c.MasterUserSecret != nil {
			t.managedSecret = aws.ToString(c.MasterUserSecret.SecretArn)
		}
	} else {
		t.kind, t.id = "DB instance", s.DBInstanceIdentifier
		out, err := client.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(s.DBInstanceIdentifier)})
		if err != nil {
			return t, fmt.Errorf("find DB instance %q (field \"dbInstanceIdentifier\") with DescribeDBInstances: %w; check the identifier and allow rds:DescribeDBInstances on the instance", s.DBInstanceIdentifier, err)
		}
		if len(out.DBInstances) != 1 {
			return t, fmt.Errorf("%w: DescribeDBInstances found %d instances for %q, want one", ErrInvalid, len(out.DBInstances), s.DBInstanceIdentifier)
		}
		i := out.DBInstances[0]
		t.id = aws.ToString(i.DBInstanceIdentifier)
		t.status, t.engine, t.user = aws.ToString(i.DBInstanceStatus), aws.ToString(i.Engine), aws.ToString(i.MasterUsername)
		if i.Endpoint != nil {
			t.host, t.port = aws.ToString(i.Endpoint.Address), int(aws.ToInt32(i.Endpoint.Port))
		}
		t.pending = i.PendingModifiedValues != nil && i.PendingModifiedValues.MasterUserPassword != nil
		if i.MasterUserSecret != nil {
			t.managedSecret = aws.ToString(i.MasterUserSecret.SecretArn)
		}
		t.member = aws.ToString(i.DBClusterIdentifier)
	}
	return t, check(s, t)
}

// check refuses a database that is not the secret's or whose master
// password the API may not set.
func check(s *dbsecret.Secret, t target) error {
	family := (&dbsecret.Secret{Engine: t.engine}).Family()
	switch {
	case t.managedSecret != "":
		return fmt.Errorf("%w: %s has ManageMasterUserPassword turned on: RDS keeps and rotates its master password in its own secret %s, and refuses a password set through the API. Use that secret (and RDS's rotation schedule), or turn ManageMasterUserPassword off on the database first if the team wants its own schedule (docs/rds-master.md)", ErrManaged, t, t.managedSecret)
	case t.member != "":
		return fmt.Errorf("%w: %s is a member of DB cluster %s, whose master password belongs to the cluster; set dbClusterIdentifier to %q instead of dbInstanceIdentifier", ErrInvalid, t, t.member, t.member)
	case family == "":
		return fmt.Errorf("%w: %s runs engine %q, which rds-master does not rotate (PostgreSQL, MySQL and MariaDB engines only)", ErrInvalid, t, t.engine)
	case family != s.Family():
		return fmt.Errorf("%w: %s runs engine %q, but field \"engine\" of the secret is %q; the identifier names a database of another engine: fix dbInstanceIdentifier or dbClusterIdentifier, or the engine", ErrInvalid, t, t.engine, s.Engine)
	case t.user != "" && t.user != s.Username:
		return fmt.Errorf("%w: the master user of %s is %q, but field \"username\" is %q; rds-master rotates the master user's password only: set username to the master user", ErrInvalid, t, t.user, s.Username)
	case !strings.EqualFold(t.host, s.Host) || (t.port != 0 && t.port != s.Port):
		return fmt.Errorf("%w: %s listens at %s:%d, but the secret says host %q port %d; point host and port at the database's endpoint (the cluster's writer endpoint for a cluster)", ErrInvalid, t, t.host, t.port, s.Host, s.Port)
	}
	return nil
}

// waitApplied describes the database until RDS reports no master password
// change being applied and the status available, bounded by WaitTimeout
// and ctx.
func (m *Master) waitApplied(ctx context.Context, client API, s *dbsecret.Secret) (target, error) {
	return m.wait(ctx, client, s, true)
}

// waitNoPending is waitApplied without the status: a database that is
// backing up or modifying something else still takes a master password,
// and a restore must not wait hours for an unrelated change.
func (m *Master) waitNoPending(ctx context.Context, client API, s *dbsecret.Secret) (target, error) {
	return m.wait(ctx, client, s, false)
}

func (m *Master) wait(ctx context.Context, client API, s *dbsecret.Secret, needAvailable bool) (target, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.waitTimeout())
	defer cancel()
	start := time.Now()
	for {
		t, err := m.describe(ctx, client, s)
		if err != nil {
			return t, err
		}
		if !t.pending && (t.status == "available" || !needAvailable) {
			return t, nil
		}
		select {
		case <-ctx.Done():
			what := "a pending master password"
			if !t.pending {
				what = "no pending master password"
			}
			return t, fmt.Errorf("%w: after %s RDS still reports %s as %q with %s; the step fails and is retried (raise %s or the function's timeout if RDS needs longer)", ErrNotApplied, time.Since(start).Round(time.Second), t, t.status, what, EnvWaitTimeout)
		case <-time.After(m.cfg.pollInterval()):
		}
	}
}

// waitChange waits, after a ModifyDB* RDS accepted, until RDS has applied
// it: it must first see the change (a pending master password, or the
// status resetting-master-credentials), then the database with nothing
// pending (and available, when needAvailable). RDS's Describe calls are
// eventually consistent: for a while after the call they may still show
// the database as it was, available with nothing pending, which must not
// pass for the change done. A change that is never seen (RDS applied it
// between two polls) counts as applied once Settle has passed since the
// call with nothing pending. Bounded by WaitTimeout and ctx.
func (m *Master) waitChange(ctx context.Context, client API, s *dbsecret.Secret, needAvailable bool) (target, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.waitTimeout())
	defer cancel()
	start := time.Now()
	seen := false
	for {
		t, err := m.describe(ctx, client, s)
		if err != nil {
			return t, err
		}
		busy := t.pending || t.status == StatusResetting
		seen = seen || busy
		idle := !busy && (t.status == "available" || !needAvailable)
		if idle && (seen || time.Since(start) >= m.cfg.settle()) {
			return t, nil
		}
		select {
		case <-ctx.Done():
			what := "a pending master password"
			switch {
			case !seen:
				what = fmt.Sprintf("nothing pending, and has not yet shown the change it accepted (its Describe calls lag; %s waits %s for that)", EnvSettle, m.cfg.settle())
			case !t.pending:
				what = "no pending master password"
			}
			return t, fmt.Errorf("%w: after %s RDS still reports %s as %q with %s; the step fails and is retried (raise %s or the function's timeout if RDS needs longer)", ErrNotApplied, time.Since(start).Round(time.Second), t, t.status, what, EnvWaitTimeout)
		case <-time.After(m.cfg.pollInterval()):
		}
	}
}

// StatusResetting is the status of a database while RDS applies a new
// master password.
const StatusResetting = "resetting-master-credentials"

// errBusy marks a ModifyDB* refused because the database is applying
// another change (perhaps this step's own, sent before a lost answer).
var errBusy = errors.New("database busy")

// setPassword asks RDS to set the master password, and when RDS answers
// that the database is busy (a change in flight, perhaps the one this step
// sent before its answer was lost), waits until nothing is pending and
// asks again: setting the same password twice is harmless, and a change
// RDS took must not be left half-known.
func (m *Master) setPassword(ctx context.Context, client API, s *dbsecret.Secret, pw string) error {
	err := m.modify(ctx, client, s, pw)
	for range 3 {
		if !errors.Is(err, errBusy) {
			return err
		}
		if _, werr := m.waitNoPending(ctx, client, s); werr != nil {
			return fmt.Errorf("%w; then %w", err, werr)
		}
		err = m.modify(ctx, client, s, pw)
	}
	return err
}

// modify asks RDS to set the master password, applied immediately.
func (m *Master) modify(ctx context.Context, client API, s *dbsecret.Secret, pw string) error {
	var err error
	what := describeKind(s)
	if s.DBClusterIdentifier != "" {
		_, err = client.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(s.DBClusterIdentifier), MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)})
	} else {
		_, err = client.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String(s.DBInstanceIdentifier), MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)})
	}
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidParameterValue":
			return fmt.Errorf("%w: RDS refused the master password for %s: %w; set PASSWORD_LENGTH and EXCLUDE_CHARACTERS so that passwords meet RDS's rules (%w)", ErrInvalid, what, err, rotation.ErrUnchanged)
		case "InvalidParameterCombination":
			return fmt.Errorf("%w: RDS refused to set the master password of %s: %w (%w)", ErrInvalid, what, err, rotation.ErrUnchanged)
		case "InvalidDBInstanceState", "InvalidDBInstanceStateFault", "InvalidDBClusterStateFault":
			return fmt.Errorf("%w: %s is applying another change, so RDS did not take the master password now: %w", errBusy, what, err)
		}
	}
	return fmt.Errorf("set the master password of %s with the RDS API: %w; allow rds:ModifyDBInstance (rds:ModifyDBCluster) on it", what, err)
}

var _ rotation.Revoker = WithLogin{}

// Revoke makes sure only AWSCURRENT's password logs in (see
// rotation.Revoker). The master has one password, so after a rotation
// AWSPREVIOUS's is normally refused already; if it still logs in, Revoke
// sets AWSCURRENT's password again through the RDS API and proves
// AWSPREVIOUS refused. It refuses, changing nothing, when AWSCURRENT does
// not log in. Only with a network path: without one, nothing can be proven.
func (w WithLogin) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := parse(rotation.LabelCurrent, req.Current)
	if err != nil {
		return err
	}
	client, err := w.client(ctx, req.SecretARN, cur)
	if err != nil {
		return err
	}
	if _, err := w.waitApplied(ctx, client, cur); err != nil {
		return err
	}
	probeCur := rotation.ProbeRequest{SecretARN: req.SecretARN, Version: req.Current, Current: req.Current}
	if err := w.probe(ctx, probeCur); err != nil {
		return fmt.Errorf("AWSCURRENT does not log in, so nothing is revoked: %w", err)
	}
	if req.Previous == nil {
		return nil
	}
	prev, ok, err := req.Previous(ctx)
	if err != nil {
		return fmt.Errorf("read AWSPREVIOUS: %w", err)
	}
	if !ok {
		return nil
	}
	probePrev := rotation.ProbeRequest{SecretARN: req.SecretARN, Version: prev, Current: req.Current}
	err = w.probe(ctx, probePrev)
	switch {
	case errors.Is(err, rotation.ErrRefused), errors.Is(err, rotation.ErrOtherTarget):
		return nil
	case err != nil:
		return fmt.Errorf("log in with AWSPREVIOUS to see whether it still works: %w", err)
	}
	if err := w.modify(ctx, client, cur, cur.Password); err != nil {
		return err
	}
	if _, err := w.waitChange(ctx, client, cur, true); err != nil {
		return fmt.Errorf("RDS accepted AWSCURRENT's password again but %w", err)
	}
	if err := w.probe(ctx, probePrev); !errors.Is(err, rotation.ErrRefused) {
		return fmt.Errorf("AWSPREVIOUS's password still logs in after RDS set AWSCURRENT's again (%v): the server does not check the master's password", err)
	}
	return w.probe(ctx, probeCur)
}
