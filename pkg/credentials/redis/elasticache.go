package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/aws/smithy-go"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ElastiCacheUser rotates the password of an ElastiCache (Redis OSS or
// Valkey) RBAC user through the ElastiCache API (elasticache-user):
// setSecret calls ModifyUser with Passwords AWSCURRENT's and AWSPENDING's
// (the access string untouched) and waits, bounded, until ElastiCache has
// applied it (the user seen modifying, then active again; DescribeUsers
// lags); testSecret logs in to the replication group's endpoint
// over TLS with the pending password. The secret is AWS's format
// (username, password, user_arn) plus host, port and replication_group_id;
// the user must be in a user group of that replication group. With
// Config.Bindings, a secret is served only for the user it is bound to.
type ElastiCacheUser struct {
	cfg Config
}

var (
	_ rotation.Credential    = (*ElastiCacheUser)(nil)
	_ rotation.Prober        = (*ElastiCacheUser)(nil)
	_ rotation.Revoker       = (*ElastiCacheUser)(nil)
	_ rotation.PublicFielder = (*ElastiCacheUser)(nil)
)

// NewElastiCacheUser returns the elasticache-user credential type.
func NewElastiCacheUser(cfg Config) *ElastiCacheUser { return &ElastiCacheUser{cfg: cfg} }

// PublicFields names the fields whose values say where and who.
func (*ElastiCacheUser) PublicFields() []string { return publicFields }

// userID returns the user id of user_arn: arn:<partition>:elasticache:<region>:<account>:user:<id>.
func userID(s *Secret) (string, error) {
	parts := strings.SplitN(s.UserARN, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "elasticache" || parts[5] != "user" || parts[6] == "" {
		return "", fieldError("user_arn", "must be the ARN of an ElastiCache user (arn:aws:elasticache:<region>:<account>:user:<user id>); copy it from DescribeUsers")
	}
	return parts[6], nil
}

func (e *ElastiCacheUser) parse(v rotation.Version) (*Secret, error) {
	s, err := parseVersion(v)
	if err != nil {
		return nil, err
	}
	if s.UserARN == "" {
		return nil, fmt.Errorf("version %s: %w", v.ID, fieldError("user_arn", "is missing; add the ARN of the ElastiCache user"))
	}
	if _, err := userID(s); err != nil {
		return nil, fmt.Errorf("version %s: %w", v.ID, err)
	}
	if strings.TrimSpace(s.ReplicationGroupID) == "" {
		return nil, fmt.Errorf("version %s: %w", v.ID, fieldError("replication_group_id", "is missing; add the id of the replication group whose endpoint is host"))
	}
	if s.MasterARN != "" {
		return nil, fmt.Errorf("version %s: %w", v.ID, fieldError("masterarn", "is not used by elasticache-user, which changes the user through the ElastiCache API; remove it"))
	}
	if len(s.Password) < 16 || len(s.Password) > 128 {
		return nil, fmt.Errorf("version %s: %w", v.ID, fieldError("password", "must be 16 to 128 characters long, as ElastiCache requires"))
	}
	return s, nil
}

// Validate checks that v is an ElastiCache user secret.
func (e *ElastiCacheUser) Validate(_ context.Context, v rotation.Version) error {
	_, err := e.parse(v)
	return err
}

// Generate returns a new password that ElastiCache accepts: 16 to 128
// printable characters, without space, ", / or @.
func (e *ElastiCacheUser) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	p := *req.Passwords
	if p.Length == 0 {
		p.Length = 32
	}
	if p.Length < 16 || p.Length > 128 {
		return rotation.GenerateResponse{}, fmt.Errorf("PASSWORD_LENGTH is %d, but an ElastiCache user's password must be 16 to 128 characters long; set PASSWORD_LENGTH from 16 to 128", p.Length)
	}
	p.IncludeSpace = false
	p.ExcludeCharacters += `"/@`
	pw, err := p.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	return rotation.GenerateResponse{Changes: map[string]any{"password": pw}}, nil
}

func (e *ElastiCacheUser) client(ctx context.Context) (ElastiCacheAPI, error) {
	if e.cfg.NewElastiCache == nil {
		return nil, errors.New("no ElastiCache API client is configured")
	}
	return e.cfg.NewElastiCache(ctx)
}

// target checks that the secret's user is the one ElastiCache knows by
// user_arn, with the secret's user name, in a user group of the secret's
// replication group, whose endpoint is the secret's host and port. It
// returns the user id.
func (e *ElastiCacheUser) target(ctx context.Context, api ElastiCacheAPI, s *Secret) (string, error) {
	id, err := userID(s)
	if err != nil {
		return "", err
	}
	rg, err := api.DescribeReplicationGroups(ctx, &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String(s.ReplicationGroupID)})
	if err != nil {
		return "", fmt.Errorf("describe the replication group %q (field \"replication_group_id\"): %w", s.ReplicationGroupID, err)
	}
	if len(rg.ReplicationGroups) != 1 {
		return "", fmt.Errorf("describe the replication group %q: ElastiCache answered %d groups", s.ReplicationGroupID, len(rg.ReplicationGroups))
	}
	g := rg.ReplicationGroups[0]
	if !hasEndpoint(g, s.Host, s.Port) {
		return "", fmt.Errorf("%w: field \"host\": %s is not an endpoint of the replication group %q; set host and port to its primary or configuration endpoint", ErrInvalidSecret, s.Addr(), s.ReplicationGroupID)
	}
	us, err := api.DescribeUsers(ctx, &elasticache.DescribeUsersInput{UserId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("describe the ElastiCache user %q (field \"user_arn\"): %w", id, err)
	}
	if len(us.Users) != 1 {
		return "", fmt.Errorf("describe the ElastiCache user %q: ElastiCache answered %d users", id, len(us.Users))
	}
	u := us.Users[0]
	// DescribeUsers looks the id up in the function's own account and
	// region: a user_arn of another account or region must not pass for
	// the user of the same id here.
	if arn := aws.ToString(u.ARN); arn != "" && arn != s.UserARN {
		return "", fmt.Errorf("%w: field \"user_arn\" is %q, but the ElastiCache user %q this function reaches is %q (another account, region or partition); set user_arn to the user's ARN as DescribeUsers reports it, or rotate it with a function of its account and region", ErrInvalidSecret, s.UserARN, id, arn)
	}
	if aws.ToString(u.UserName) != s.Username {
		return "", fmt.Errorf("%w: field \"username\" is %q, but the ElastiCache user %q is named %q; fix the user name or user_arn", ErrInvalidSecret, s.Username, id, aws.ToString(u.UserName))
	}
	if !sharesGroup(u.UserGroupIds, g.UserGroupIds) {
		return "", fmt.Errorf("%w: the ElastiCache user %q is in no user group of the replication group %q; name the user of this replication group in user_arn, or the replication group of this user in replication_group_id", ErrInvalidSecret, id, s.ReplicationGroupID)
	}
	if u.Authentication != nil && u.Authentication.Type != types.AuthenticationTypePassword {
		return "", fmt.Errorf("the ElastiCache user %q authenticates with %q, not a password; there is nothing to rotate", id, u.Authentication.Type)
	}
	return id, nil
}

func hasEndpoint(g types.ReplicationGroup, host string, port int) bool {
	match := func(ep *types.Endpoint) bool {
		return ep != nil && strings.EqualFold(aws.ToString(ep.Address), host) && int(aws.ToInt32(ep.Port)) == port
	}
	if match(g.ConfigurationEndpoint) {
		return true
	}
	for _, ng := range g.NodeGroups {
		if match(ng.PrimaryEndpoint) || match(ng.ReaderEndpoint) {
			return true
		}
	}
	return false
}

func sharesGroup(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// modify sets the user's passwords to exactly passwords, waiting for the
// user to be active before, and after for ElastiCache to have applied the
// change (waitChange), bounded. When ElastiCache refuses the call because
// the user is still modifying (a DescribeUsers that lagged showed it
// active), it waits and asks again: setting the same passwords twice is
// harmless.
func (e *ElastiCacheUser) modify(ctx context.Context, api ElastiCacheAPI, id string, passwords []string) error {
	bound, every := e.waitBounds()
	deadline := time.Now().Add(bound)
	for {
		if err := e.waitActive(ctx, api, id); err != nil {
			return err
		}
		start := time.Now()
		_, err := api.ModifyUser(ctx, &elasticache.ModifyUserInput{UserId: aws.String(id), Passwords: passwords})
		var ae smithy.APIError
		if err != nil && errors.As(err, &ae) && ae.ErrorCode() == "InvalidUserState" && start.Add(every).Before(deadline) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("ModifyUser %q: %w", id, err)
			case <-time.After(every):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("ModifyUser %q: %w", id, err)
		}
		return e.waitChange(ctx, api, id, start)
	}
}

func (e *ElastiCacheUser) waitBounds() (bound, every time.Duration) {
	bound, every = e.cfg.WaitActive, e.cfg.PollInterval
	if bound <= 0 {
		bound = DefaultWaitActive
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	return bound, every
}

// describeStatus returns the user's status as DescribeUsers reports it;
// "" when ElastiCache answered no user and the wait is over.
func describeStatus(ctx context.Context, api ElastiCacheAPI, id string) (string, error) {
	out, err := api.DescribeUsers(ctx, &elasticache.DescribeUsersInput{UserId: aws.String(id)})
	switch {
	case err == nil && len(out.Users) == 1:
		return aws.ToString(out.Users[0].Status), nil
	case err != nil && ctx.Err() == nil:
		return "", fmt.Errorf("describe the ElastiCache user %q: %w", id, err)
	}
	return "", nil
}

func (e *ElastiCacheUser) waitActive(ctx context.Context, api ElastiCacheAPI, id string) error {
	bound, every := e.waitBounds()
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	status := ""
	for {
		st, err := describeStatus(wctx, api, id)
		if err != nil {
			return err
		}
		if st != "" {
			status = st // keep the last status ElastiCache reported for the error
		}
		if status == "active" {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("the ElastiCache user %q is still %q after %s (%s); the rotation will retry", id, status, bound, EnvWaitActive)
		case <-time.After(every):
		}
	}
}

// waitChange waits, after a ModifyUser ElastiCache accepted at start,
// until ElastiCache has applied it: it must first see the user
// "modifying", then "active". DescribeUsers is eventually consistent: for
// a while after the call it may still show the user active, as it was,
// which must not pass for the change done (the pending password would not
// log in yet, and the next ModifyUser would be refused). A change that is
// never seen (applied between two polls) counts as applied once Settle
// has passed since the call with the user active. Bounded by
// ROTARY_ELASTICACHE_WAIT and ctx.
func (e *ElastiCacheUser) waitChange(ctx context.Context, api ElastiCacheAPI, id string, start time.Time) error {
	bound, every := e.waitBounds()
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	seen, status := false, ""
	for {
		st, err := describeStatus(wctx, api, id)
		if err != nil {
			return err
		}
		if st != "" {
			status = st
		}
		seen = seen || status == "modifying"
		if status == "active" && (seen || time.Since(start) >= e.cfg.settle()) {
			return nil
		}
		select {
		case <-wctx.Done():
			if !seen {
				return fmt.Errorf("the ElastiCache user %q is %q after %s and has not yet shown the change ElastiCache accepted (DescribeUsers lags; %s waits %s for that, %s bounds the wait); the rotation will retry", id, status, bound, EnvElastiCacheSettle, e.cfg.settle(), EnvWaitActive)
			}
			return fmt.Errorf("the ElastiCache user %q is still %q after %s (%s); the rotation will retry", id, status, bound, EnvWaitActive)
		case <-time.After(every):
		}
	}
}

// Set makes the user's passwords exactly AWSCURRENT's and AWSPENDING's.
// ModifyUser replaces the list, so a retry sets the same two again.
func (e *ElastiCacheUser) Set(ctx context.Context, req rotation.SetRequest) error {
	cur, err := e.parse(req.Current)
	if err != nil {
		return err
	}
	pend, err := e.parse(req.Pending)
	if err != nil {
		return err
	}
	if err := checkPending(cur, pend); err != nil {
		return err
	}
	if err := e.cfg.checkBinding(req.SecretARN, cur); err != nil {
		return err
	}
	api, err := e.client(ctx)
	if err != nil {
		return err
	}
	id, err := e.target(ctx, api, cur)
	if err != nil {
		return err
	}
	return e.modify(ctx, api, id, []string{cur.Password, pend.Password})
}

// Test logs in to the endpoint as the user with the pending password and runs PING.
func (e *ElastiCacheUser) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := e.parse(req.Pending)
	if err != nil {
		return err
	}
	return testLogin(ctx, e.cfg, pend)
}

// Probe logs in with the version's password (see ACLUser.Probe).
func (e *ElastiCacheUser) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return probe(ctx, e.cfg, req)
}

// Revoke leaves the user only AWSCURRENT's password, after proving it logs in.
func (e *ElastiCacheUser) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := e.parse(req.Current)
	if err != nil {
		return err
	}
	if err := e.cfg.checkBinding(req.SecretARN, cur); err != nil {
		return err
	}
	if err := testLogin(ctx, e.cfg, cur); err != nil {
		return fmt.Errorf("AWSCURRENT does not log in, so revoke changes nothing: %w", err)
	}
	api, err := e.client(ctx)
	if err != nil {
		return err
	}
	id, err := e.target(ctx, api, cur)
	if err != nil {
		return err
	}
	return e.modify(ctx, api, id, []string{cur.Password})
}
