package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// Staging labels.
const (
	labelCurrent  = "AWSCURRENT"
	labelPending  = "AWSPENDING"
	labelPrevious = "AWSPREVIOUS"
)

// awsFlags are the flags every command that talks to AWS takes.
type awsFlags struct {
	region, profile, endpoint string
}

func addAWSFlags(fs *flag.FlagSet) *awsFlags {
	f := &awsFlags{}
	fs.StringVar(&f.region, "region", "", "AWS region (default: AWS_REGION or the profile's)")
	fs.StringVar(&f.profile, "profile", "", "shared config profile")
	fs.StringVar(&f.endpoint, "endpoint", "", "Secrets Manager, Lambda and CloudTrail endpoint URL, such as the local stack's")
	return f
}

// clients are what a command talks to.
type clients struct {
	sm     *secretsmanager.Client
	lambda *lambda.Client
	// trail is CloudTrail, for audit and incident: the local stack's
	// LookupEvents when the endpoint is one.
	trail *cloudtrail.Client
	// feed is the local stack's base URL when the endpoint is one (see
	// localstack.RotationsPath); empty against AWS.
	feed string
	http *http.Client
	// cfg is the loaded AWS configuration (rotary issue signs with its credentials).
	cfg aws.Config
}

// connect loads the AWS configuration the way the AWS CLI does. An endpoint
// on loopback (from --endpoint or AWS_ENDPOINT_URL_SECRETS_MANAGER) with no
// credentials configured gets the local stack's fake credentials.
func (f *awsFlags) connect(ctx context.Context) (*clients, error) {
	var opts []func(*config.LoadOptions) error
	if f.region != "" {
		opts = append(opts, config.WithRegion(f.region))
	}
	if f.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(f.profile))
	}
	endpoint := f.endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
	}
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	local := isLoopback(endpoint)
	if local && f.profile == "" && os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smlocal.LocalAccessKeyID, smlocal.LocalSecretAccessKey, "")))
	}
	if local && f.region == "" && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion(localstack.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w; check --profile and your AWS config files", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("%w: no AWS region; pass --region or set AWS_REGION", errUsage)
	}
	c := &clients{http: &http.Client{Timeout: 30 * time.Second}, cfg: cfg}
	c.sm = secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if f.endpoint != "" {
			o.BaseEndpoint = aws.String(f.endpoint)
		}
	})
	c.lambda = lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		if f.endpoint != "" {
			o.BaseEndpoint = aws.String(f.endpoint)
		}
	})
	c.trail = cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) {
		// The local stack serves CloudTrail at its one endpoint: an
		// endpoint for Secrets Manager on loopback is the stack's, unless
		// CloudTrail has its own.
		switch {
		case f.endpoint != "":
			o.BaseEndpoint = aws.String(f.endpoint)
		case local && os.Getenv("AWS_ENDPOINT_URL_CLOUDTRAIL") == "":
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	if local {
		c.feed = strings.TrimRight(endpoint, "/")
	}
	return c, nil
}

func isLoopback(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// rotations reads the local stack's rotations feed for a secret; ok is
// false when the endpoint has none (real AWS).
func (c *clients) rotations(ctx context.Context, arn string) (localstack.RotationsFeed, bool) {
	var feed localstack.RotationsFeed
	if c.feed == "" {
		return feed, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.feed+localstack.RotationsPath+"?secretId="+url.QueryEscape(arn), nil)
	if err != nil {
		return feed, false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return feed, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&feed) != nil {
		return localstack.RotationsFeed{}, false
	}
	return feed, true
}

// secretState is what DescribeSecret and ListSecretVersionIds say about a
// secret, never its values.
type secretState struct {
	desc     *secretsmanager.DescribeSecretOutput
	arn      string
	name     string
	versions []smtypes.SecretVersionsListEntry // newest first, deprecated included
}

func (s *secretState) labeled(label string) string {
	for id, stages := range s.desc.VersionIdsToStages {
		if slices.Contains(stages, label) {
			return id
		}
	}
	return ""
}

// stuckPending returns the version holding AWSPENDING when it is not the
// AWSCURRENT one: a rotation is running or failed.
func (s *secretState) stuckPending() string {
	p := s.labeled(labelPending)
	if p != "" && p != s.labeled(labelCurrent) {
		return p
	}
	return ""
}

func (s *secretState) version(id string) (smtypes.SecretVersionsListEntry, bool) {
	for _, v := range s.versions {
		if aws.ToString(v.VersionId) == id {
			return v, true
		}
	}
	return smtypes.SecretVersionsListEntry{}, false
}

func (c *clients) describe(ctx context.Context, id string) (*secretState, error) {
	d, err := c.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("secret %s not found: check the name or ARN, --region and --endpoint: %w", id, err)
		}
		return nil, fmt.Errorf("describe secret %s: %w", id, err)
	}
	return c.versionsOf(ctx, d)
}

// versionsOf completes a described secret with its versions.
func (c *clients) versionsOf(ctx context.Context, d *secretsmanager.DescribeSecretOutput) (*secretState, error) {
	s := &secretState{desc: d, arn: aws.ToString(d.ARN), name: aws.ToString(d.Name)}
	p := secretsmanager.NewListSecretVersionIdsPaginator(c.sm, &secretsmanager.ListSecretVersionIdsInput{SecretId: d.ARN, IncludeDeprecated: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list versions of %s: %w", s.name, err)
		}
		s.versions = append(s.versions, page.Versions...)
	}
	sort.SliceStable(s.versions, func(i, j int) bool {
		return aws.ToTime(s.versions[i].CreatedDate).After(aws.ToTime(s.versions[j].CreatedDate))
	})
	return s, nil
}

// fingerprint identifies a value without revealing it.
func fingerprint(value string) string {
	sum := sha256.Sum256([]byte(value))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// newToken returns a fresh ClientRequestToken (a random UUID).
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// usernameOf returns the "username" field of a JSON secret value, if any.
func usernameOf(value string) string {
	var m struct {
		Username string `json:"username"`
	}
	_ = json.Unmarshal([]byte(value), &m)
	return m.Username
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// fmtAge prints a duration the way people say it: 3d4h, 2h5m, 40s.
func fmtAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		return d.Round(time.Second).String()
	}
}
