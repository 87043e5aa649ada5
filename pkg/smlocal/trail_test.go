package smlocal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// Local principals of the trail tests.
const (
	appKey     = "AKIAAPPLICATION00001"
	appARN     = "arn:aws:sts::123456789012:assumed-role/orders-app/orders-task"
	userKey    = "AKIAALICE00000000001"
	userARN    = "arn:aws:iam::123456789012:user/alice"
	fnKey      = "ASIAROTATIONFUNCTION"
	fnARN      = "arn:aws:sts::123456789012:assumed-role/rotary-random-secret/random-secret"
	rotFnARN   = "arn:aws:lambda:us-east-1:123456789012:function:rotary-random-secret"
	strangeKey = "AKIANOBODYKNOWSME001"
)

// trailClock is a settable clock.
type trailClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *trailClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *trailClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type trailEnv struct {
	srv   *smlocal.Server
	url   string
	clock *trailClock
	trail *cloudtrail.Client
}

// The clients keep the SDK's default retries: on loopback the SDK's
// transport sometimes closes a connection while a large response is read
// (aws/aws-sdk-go-v2#2737), which it retries as net.ErrClosed; with one
// attempt, pages of 50 events fail now and then.
func (e *trailEnv) sm(key string) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(e.url),
		Credentials: credentials.NewStaticCredentialsProvider(key, "local-not-a-secret", ""),
	})
}

// startTrail starts a server whose invoker rotates like random-secret,
// through the SDK with the function's own key.
func startTrail(t *testing.T, stateFile string) *trailEnv {
	t.Helper()
	e := &trailEnv{clock: &trailClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}}
	var fn *secretsmanager.Client
	srv, err := smlocal.New(smlocal.Options{
		Clock: e.clock.Now, StateFile: stateFile, Retry: smlocal.RetryPolicy{Attempts: 1},
		Principals: localauth.New(
			localauth.Principal{AccessKeyID: appKey, ARN: appARN},
			localauth.Principal{AccessKeyID: userKey, ARN: userARN},
			localauth.Principal{AccessKeyID: fnKey, ARN: fnARN},
		),
		Invoker: smlocal.InvokerFunc(func(ctx context.Context, _ string, ev smlocal.Event) error {
			return fakeRotation(ctx, fn, ev)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		hs.Close()
	})
	e.srv, e.url = srv, hs.URL
	fn = e.sm(fnKey)
	e.trail = cloudtrail.New(cloudtrail.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(userKey, "local-not-a-secret", ""),
	})
	return e
}

// fakeRotation does what a random-secret rotation does, over the wire.
func fakeRotation(ctx context.Context, c *secretsmanager.Client, ev smlocal.Event) error {
	switch ev.Step {
	case smlocal.StepCreate:
		pw, err := c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(32)})
		if err != nil {
			return err
		}
		if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(ev.SecretId), VersionStage: aws.String("AWSCURRENT")}); err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]string{"apiKey": aws.ToString(pw.RandomPassword)})
		_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(ev.SecretId), ClientRequestToken: aws.String(ev.ClientRequestToken),
			SecretString: aws.String(string(b)), VersionStages: []string{"AWSPENDING"}, RotationToken: aws.String(ev.RotationToken),
		})
		return err
	case smlocal.StepFinish:
		d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(ev.SecretId)})
		if err != nil {
			return err
		}
		var cur string
		for v, stages := range d.VersionIdsToStages {
			if slices.Contains(stages, "AWSCURRENT") {
				cur = v
			}
		}
		_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(ev.SecretId), VersionStage: aws.String("AWSCURRENT"),
			MoveToVersionId: aws.String(ev.ClientRequestToken), RemoveFromVersionId: aws.String(cur),
		})
		return err
	}
	return nil
}

// lookup pages through LookupEvents with one attribute.
func lookup(t *testing.T, c *cloudtrail.Client, in *cloudtrail.LookupEventsInput) []cttypes.Event {
	t.Helper()
	var out []cttypes.Event
	p := cloudtrail.NewLookupEventsPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("LookupEvents: %v", err)
		}
		out = append(out, page.Events...)
	}
	return out
}

func attr(k cttypes.LookupAttributeKey, v string) []cttypes.LookupAttribute {
	return []cttypes.LookupAttribute{{AttributeKey: k, AttributeValue: aws.String(v)}}
}

func record(t *testing.T, e cttypes.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &m); err != nil {
		t.Fatalf("CloudTrailEvent of %s is not JSON: %v", aws.ToString(e.EventName), err)
	}
	return m
}

// TestTrailRecordsCloudTrailShape drives the operations the suite uses with
// the real SDK clients and checks each recorded event against CloudTrail's
// record shape: identity from the signing key, request parameters without
// values, null responses for reads, the request id the client saw.
func TestTrailRecordsCloudTrailShape(t *testing.T) {
	e := startTrail(t, "")
	ctx := context.Background()
	admin, app, stranger := e.sm(userKey), e.sm(appKey), e.sm(strangeKey)
	created, err := admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("orders/api"), SecretString: aws.String(`{"apiKey":"initial-value-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(created.ARN)
	e.clock.Advance(time.Second)
	got, err := app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("orders/api"), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		t.Fatal(err)
	}
	readRequestID, _ := awsmiddleware.GetRequestIDMetadata(got.ResultMetadata)
	e.clock.Advance(time.Second)
	if _, err := stranger.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(aws.ToString(created.VersionId))}); err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("orders/none")}); err == nil {
		t.Fatal("reading a missing secret succeeded")
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*","Condition":{"ArnNotLike":{"aws:PrincipalArn":["arn:aws:iam::123456789012:role/orders-app"]}}}]}`
	if _, err := admin.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String(arn), ResourcePolicy: aws.String(policy), BlockPublicPolicy: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	gp, err := admin.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(arn)})
	if err != nil || aws.ToString(gp.ResourcePolicy) != policy {
		t.Fatalf("GetResourcePolicy = %v, %v; want the policy put", aws.ToString(gp.ResourcePolicy), err)
	}
	if _, err := admin.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(rotFnARN)}); err != nil {
		t.Fatal(err)
	}
	if r, err := e.srv.WaitRotation(ctx, arn); err != nil || r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation: %v %+v", err, r)
	}

	must(admin.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(arn), IncludeDeprecated: aws.Bool(true)}))
	events := lookup(t, e.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, arn)})
	byName := map[string][]map[string]any{}
	for _, ev := range events {
		m := record(t, ev)
		byName[aws.ToString(ev.EventName)] = append(byName[aws.ToString(ev.EventName)], m)
		// Every record has CloudTrail's fields, and the summary agrees with it.
		for _, k := range []string{"eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress", "userAgent", "requestParameters", "responseElements", "eventID", "readOnly", "eventType", "managementEvent", "recipientAccountId", "eventCategory", "resources"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s event lacks %s: %s", aws.ToString(ev.EventName), k, aws.ToString(ev.CloudTrailEvent))
			}
		}
		if m["eventID"] != aws.ToString(ev.EventId) || m["eventName"] != aws.ToString(ev.EventName) || fmt.Sprint(m["readOnly"]) != aws.ToString(ev.ReadOnly) {
			t.Errorf("summary %s/%s/%s disagrees with the record", aws.ToString(ev.EventId), aws.ToString(ev.EventName), aws.ToString(ev.ReadOnly))
		}
		if m["eventSource"] != "secretsmanager.amazonaws.com" || m["awsRegion"] != "us-east-1" || m["recipientAccountId"] != "123456789012" || m["managementEvent"] != true {
			t.Errorf("%s: source/region/account/management wrong: %v", aws.ToString(ev.EventName), m)
		}
		if len(ev.Resources) != 1 || aws.ToString(ev.Resources[0].ResourceName) != arn || aws.ToString(ev.Resources[0].ResourceType) != "AWS::SecretsManager::Secret" {
			t.Errorf("%s resources = %+v, want the secret", aws.ToString(ev.EventName), ev.Resources)
		}
	}
	for i := 1; i < len(events); i++ {
		if aws.ToTime(events[i].EventTime).After(aws.ToTime(events[i-1].EventTime)) {
			t.Fatalf("events are not newest first: %v after %v", events[i].EventTime, events[i-1].EventTime)
		}
	}
	want := map[string]int{"ListSecretVersionIds": 1, "CreateSecret": 1, "GetSecretValue": 3, "PutResourcePolicy": 1, "GetResourcePolicy": 1, "RotateSecret": 1, "PutSecretValue": 1,
		"DescribeSecret": 1, "UpdateSecretVersionStage": 1, "RotationStarted": 1, "RotationSucceeded": 1}
	for name, n := range want {
		if len(byName[name]) != n {
			t.Errorf("%d %s events for the secret, want %d", len(byName[name]), name, n)
		}
	}

	// The application's read: an assumed-role session, the version stage,
	// no response, the request id the SDK saw.
	readBy := map[string][]map[string]any{}
	for _, r := range byName["GetSecretValue"] {
		k := r["userIdentity"].(map[string]any)["accessKeyId"].(string)
		readBy[k] = append(readBy[k], r)
	}
	if len(readBy[appKey]) != 1 || len(readBy[strangeKey]) != 1 || len(readBy[fnKey]) != 1 {
		t.Fatalf("reads by key: %d app, %d stranger, %d function; want one each", len(readBy[appKey]), len(readBy[strangeKey]), len(readBy[fnKey]))
	}
	appRead, strangeRead := readBy[appKey][0], readBy[strangeKey][0]
	id := appRead["userIdentity"].(map[string]any)
	if id["type"] != "AssumedRole" || id["arn"] != appARN || id["accessKeyId"] != appKey || id["accountId"] != "123456789012" ||
		!strings.HasPrefix(id["principalId"].(string), "AROA") || !strings.HasSuffix(id["principalId"].(string), ":orders-task") {
		t.Errorf("app read identity = %v", id)
	}
	issuer := id["sessionContext"].(map[string]any)["sessionIssuer"].(map[string]any)
	if issuer["type"] != "Role" || issuer["arn"] != "arn:aws:iam::123456789012:role/orders-app" || issuer["userName"] != "orders-app" {
		t.Errorf("app read session issuer = %v", issuer)
	}
	if p := appRead["requestParameters"].(map[string]any); p["secretId"] != "orders/api" || p["versionStage"] != "AWSCURRENT" || len(p) != 2 {
		t.Errorf("app read requestParameters = %v, want secretId and versionStage", p)
	}
	if appRead["responseElements"] != nil || appRead["readOnly"] != true || appRead["eventType"] != "AwsApiCall" || appRead["eventVersion"] != "1.09" {
		t.Errorf("app read = %v; want responseElements null, readOnly, AwsApiCall, 1.09", appRead)
	}
	if appRead["requestID"] != readRequestID || readRequestID == "" {
		t.Errorf("requestID %v, the SDK saw %q", appRead["requestID"], readRequestID)
	}
	if !strings.Contains(appRead["userAgent"].(string), "aws-sdk-go-v2") || appRead["sourceIPAddress"] != "127.0.0.1" {
		t.Errorf("userAgent %v, sourceIPAddress %v", appRead["userAgent"], appRead["sourceIPAddress"])
	}
	// A key nobody named: a recognisable local identity, with its key.
	sid := strangeRead["userIdentity"].(map[string]any)
	if sid["type"] != "IAMUser" || sid["arn"] != "arn:aws:iam::123456789012:user/"+smlocal.UnknownPrincipalName || sid["accessKeyId"] != strangeKey {
		t.Errorf("unknown key identity = %v", sid)
	}
	if p := strangeRead["requestParameters"].(map[string]any); p["versionId"] != aws.ToString(created.VersionId) {
		t.Errorf("read by version: requestParameters %v", p)
	}
	// Writes: parameters without the value, responses with ids and labels.
	cr := byName["CreateSecret"][0]
	if p := cr["requestParameters"].(map[string]any); p["name"] != "orders/api" || p["secretString"] != nil || p["SecretString"] != nil {
		t.Errorf("CreateSecret requestParameters = %v", p)
	}
	if r := cr["responseElements"].(map[string]any); r["arn"] != arn || r["versionId"] != aws.ToString(created.VersionId) {
		t.Errorf("CreateSecret responseElements = %v", r)
	}
	if u := cr["userIdentity"].(map[string]any); u["type"] != "IAMUser" || u["userName"] != "alice" || u["arn"] != userARN || u["sessionContext"] != nil {
		t.Errorf("CreateSecret identity = %v", u)
	}
	put := byName["PutSecretValue"][0]
	if p := put["requestParameters"].(map[string]any); p["secretId"] == nil || p["clientRequestToken"] == nil || p["rotationToken"] != nil || p["secretString"] != nil ||
		fmt.Sprint(p["versionStages"]) != "[AWSPENDING]" {
		t.Errorf("PutSecretValue requestParameters = %v", p)
	}
	if u := put["userIdentity"].(map[string]any); u["arn"] != fnARN {
		t.Errorf("the function's PutSecretValue is recorded as %v, want %s", u["arn"], fnARN)
	}
	mv := byName["UpdateSecretVersionStage"][0]["requestParameters"].(map[string]any)
	if mv["versionStage"] != "AWSCURRENT" || mv["moveToVersionId"] == nil || mv["removeFromVersionId"] != aws.ToString(created.VersionId) {
		t.Errorf("UpdateSecretVersionStage requestParameters = %v", mv)
	}
	if r := byName["RotateSecret"][0]; r["requestParameters"].(map[string]any)["rotationLambdaARN"] != rotFnARN {
		t.Errorf("RotateSecret requestParameters = %v", r["requestParameters"])
	}
	for _, name := range []string{"RotationStarted", "RotationSucceeded"} {
		s := byName[name][0]
		if s["eventType"] != "AwsServiceEvent" || s["eventVersion"] != "1.08" || s["sourceIPAddress"] != "secretsmanager.amazonaws.com" ||
			s["userIdentity"].(map[string]any)["invokedBy"] != "secretsmanager.amazonaws.com" ||
			s["additionalEventData"].(map[string]any)["SecretId"] != arn || s["requestParameters"] != nil {
			t.Errorf("%s = %v", name, s)
		}
	}
	lv := byName["ListSecretVersionIds"][0]
	if p := lv["requestParameters"].(map[string]any); p["secretId"] != arn || p["includeDeprecated"] != true || lv["responseElements"] != nil || lv["readOnly"] != true {
		t.Errorf("ListSecretVersionIds = %v", lv)
	}
	if d := byName["DescribeSecret"][0]; d["responseElements"] != nil || d["readOnly"] != true {
		t.Errorf("DescribeSecret = %v", d)
	}
	if p := byName["PutResourcePolicy"][0]; p["readOnly"] != false || p["requestParameters"].(map[string]any)["blockPublicPolicy"] != true ||
		p["responseElements"].(map[string]any)["arn"] != arn {
		t.Errorf("PutResourcePolicy = %v", p)
	}
	// GetRandomPassword is recorded without its password; the failed read with its error.
	rnd := lookup(t, e.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventName, "GetRandomPassword")})
	if len(rnd) != 1 || record(t, rnd[0])["responseElements"] != nil || len(rnd[0].Resources) != 0 {
		t.Errorf("GetRandomPassword events = %+v", rnd)
	}
	failed := lookup(t, e.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyAccessKeyId, strangeKey)})
	if len(failed) != 2 || record(t, failed[0])["errorCode"] != "ResourceNotFoundException" || record(t, failed[0])["errorMessage"] == "" {
		t.Errorf("the stranger's events = %d, newest %v", len(failed), record(t, failed[0]))
	}
}

// TestLookupEventsFiltersAndPages checks every lookup attribute, the time
// range, MaxResults and NextToken, and CloudTrail's errors.
func TestLookupEventsFiltersAndPages(t *testing.T) {
	e := startTrail(t, "")
	ctx := context.Background()
	admin, app := e.sm(userKey), e.sm(appKey)
	a := aws.ToString(must(admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("a"), SecretString: aws.String("va")})).ARN)
	b := aws.ToString(must(admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("b"), SecretString: aws.String("vb")})).ARN)
	start := e.clock.Now()
	for i := 0; i < 60; i++ {
		e.clock.Advance(time.Minute)
		id := a
		if i%3 == 0 {
			id = b
		}
		must(app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}))
	}
	count := func(in *cloudtrail.LookupEventsInput) int { return len(lookup(t, e.trail, in)) }
	cases := []struct {
		name string
		in   cloudtrail.LookupEventsInput
		want int
	}{
		{"all", cloudtrail.LookupEventsInput{}, 62},
		{"ResourceName", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, a)}, 41},
		{"EventName", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventName, "GetSecretValue")}, 60},
		{"Username (session)", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyUsername, "orders-task")}, 60},
		{"Username (user)", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyUsername, "alice")}, 2},
		{"AccessKeyId", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyAccessKeyId, userKey)}, 2},
		{"ReadOnly", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyReadOnly, "false")}, 2},
		{"EventSource", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventSource, "secretsmanager.amazonaws.com")}, 62},
		{"ResourceType", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceType, "AWS::SecretsManager::Secret")}, 62},
		{"no match", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventName, "DeleteSecret")}, 0},
		{"time range", cloudtrail.LookupEventsInput{StartTime: aws.Time(start.Add(10 * time.Minute)), EndTime: aws.Time(start.Add(19 * time.Minute))}, 10},
		{"time range and attribute", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, b), StartTime: aws.Time(start.Add(time.Minute)), EndTime: aws.Time(start.Add(10 * time.Minute))}, 4},
	}
	for _, tc := range cases {
		if got := count(&tc.in); got != tc.want {
			t.Errorf("%s: %d events, want %d", tc.name, got, tc.want)
		}
	}
	ev := lookup(t, e.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventName, "CreateSecret")})
	if got := count(&cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventId, aws.ToString(ev[0].EventId))}); got != 1 {
		t.Errorf("EventId: %d events, want 1", got)
	}

	// Pages of 7, newest first, each event once.
	seen := map[string]bool{}
	var prev time.Time
	pages := 0
	var next *string
	for {
		out, err := e.trail.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, a), MaxResults: aws.Int32(7), NextToken: next})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(out.Events) > 7 {
			t.Fatalf("page of %d events, MaxResults 7", len(out.Events))
		}
		for _, ev := range out.Events {
			id := aws.ToString(ev.EventId)
			if seen[id] {
				t.Fatalf("event %s on two pages", id)
			}
			seen[id] = true
			if tm := aws.ToTime(ev.EventTime); !prev.IsZero() && tm.After(prev) {
				t.Fatalf("page %d: %v after %v: not newest first", pages, tm, prev)
			}
			prev = aws.ToTime(ev.EventTime)
		}
		if out.NextToken == nil {
			break
		}
		next = out.NextToken
	}
	if len(seen) != 41 || pages != 6 {
		t.Errorf("%d events in %d pages, want 41 in 6", len(seen), pages)
	}
	def := must(e.trail.LookupEvents(ctx, &cloudtrail.LookupEventsInput{}))
	if len(def.Events) != 50 || def.NextToken == nil {
		t.Errorf("default page: %d events, next %v; want 50 and a token", len(def.Events), def.NextToken)
	}

	// CloudTrail's errors.
	errCases := []struct {
		name, code string
		in         cloudtrail.LookupEventsInput
	}{
		{"two attributes", "InvalidLookupAttributesException", cloudtrail.LookupEventsInput{LookupAttributes: append(attr(cttypes.LookupAttributeKeyEventName, "GetSecretValue"), attr(cttypes.LookupAttributeKeyUsername, "alice")...)}},
		{"unknown key", "InvalidLookupAttributesException", cloudtrail.LookupEventsInput{LookupAttributes: attr("SecretName", "a")}},
		{"empty value", "InvalidLookupAttributesException", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventName, "")}},
		{"MaxResults 0", "InvalidMaxResultsException", cloudtrail.LookupEventsInput{MaxResults: aws.Int32(0)}},
		{"MaxResults 51", "InvalidMaxResultsException", cloudtrail.LookupEventsInput{MaxResults: aws.Int32(51)}},
		{"start after end", "InvalidTimeRangeException", cloudtrail.LookupEventsInput{StartTime: aws.Time(start.Add(time.Hour)), EndTime: aws.Time(start)}},
		{"garbage token", "InvalidNextTokenException", cloudtrail.LookupEventsInput{NextToken: aws.String("not-a-token")}},
		{"token of another lookup", "InvalidNextTokenException", cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, b), NextToken: def.NextToken}},
	}
	for _, tc := range errCases {
		_, err := e.trail.LookupEvents(ctx, &tc.in)
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != tc.code || ae.ErrorMessage() == "" {
			t.Errorf("%s: error %v, want %s", tc.name, err, tc.code)
		}
	}
}

// TestTrailKeptAndAppended restarts the server on its state file: the
// events are still looked up, the trail file only grew by appends, and the
// state file holds no event.
func TestTrailKeptAndAppended(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	e := startTrail(t, state)
	ctx := context.Background()
	c := e.sm(appKey)
	arn := aws.ToString(must(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("kept"), SecretString: aws.String("v")})).ARN)
	trailFile := filepath.Join(dir, "state.trail.jsonl")
	var sizes []int64
	for i := 0; i < 3; i++ {
		must(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}))
		fi, err := os.Stat(trailFile)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	if d1, d2 := sizes[1]-sizes[0], sizes[2]-sizes[1]; d1 <= 0 || d2 <= 0 || d2 > 2*d1 {
		t.Errorf("trail file sizes %v: each read should append one record", sizes)
	}
	b, _ := os.ReadFile(state)
	if strings.Contains(string(b), "GetSecretValue") {
		t.Error("the state file holds events; they belong in the appended trail file")
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := startTrail(t, state)
	got := lookup(t, e2.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, arn)})
	if len(got) != 4 || aws.ToString(got[0].EventName) != "GetSecretValue" || aws.ToString(got[3].EventName) != "CreateSecret" {
		t.Fatalf("after a restart: %d events, want CreateSecret and 3 reads", len(got))
	}
	must(e2.sm(appKey).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}))
	if n := len(lookup(t, e2.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, arn)})); n != 5 {
		t.Fatalf("%d events after one more read, want 5", n)
	}
}

// TestTrailHoldsNoSecretValue runs every call that carries a value (create,
// put, update, read, random password, rotation) with values full of JSON
// metacharacters and searches every recorded event, and the trail file,
// for every form of every value.
func TestTrailHoldsNoSecretValue(t *testing.T) {
	dir := t.TempDir()
	e := startTrail(t, filepath.Join(dir, "s.json"))
	ctx := context.Background()
	c := e.sm(userKey)
	values := []string{`{"password":"p\"w<1>&\\x","apiKey":"k-one"}`, `{"password":"second \u00e9 'pw'"}`, `plain-third-value/+=`}
	arn := aws.ToString(must(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("leak"), SecretString: aws.String(values[0])})).ARN)
	must(c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(values[1])}))
	must(c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String(arn), SecretString: aws.String(values[2])}))
	bin := must(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("leak-bin"), SecretBinary: []byte("binary-secret-bytes")}))
	must(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: bin.ARN}))
	pw := must(c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{}))
	values = append(values, aws.ToString(pw.RandomPassword), "binary-secret-bytes", "YmluYXJ5LXNlY3JldC1ieXRlcw==")
	must(c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(rotFnARN)}))
	if r, err := e.srv.WaitRotation(ctx, arn); err != nil || r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation: %v %+v", err, r)
	}
	for _, r := range e.srv.Rotations(arn) {
		values = append(values, r.RotationToken)
	}
	cur := must(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}))
	values = append(values, aws.ToString(cur.SecretString))
	var fields map[string]string
	_ = json.Unmarshal([]byte(aws.ToString(cur.SecretString)), &fields)
	values = append(values, fields["apiKey"], `p"w<1>&\x`, `second é 'pw'`)

	// A hand-made client's keys in any case: encoding/json stores
	// {"secretString": ...} as the value, so the trail must drop it too.
	for i, body := range []string{
		`{"Name":"leak-case","secretString":"LOWER-CASE-KEY-VALUE-1"}`,
		`{"SecretId":"leak-case","SECRETSTRING":"UPPER-CASE-KEY-VALUE-2"}`,
	} {
		target := []string{"secretsmanager.CreateSecret", "secretsmanager.PutSecretValue"}[i]
		req, _ := http.NewRequest("POST", e.url, strings.NewReader(body))
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s with a %d-byte body: HTTP %d", target, len(body), resp.StatusCode)
		}
	}
	stored := must(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("leak-case")}))
	if aws.ToString(stored.SecretString) != "UPPER-CASE-KEY-VALUE-2" {
		t.Fatal("the server did not store the value sent with an upper-case key, so this test checks nothing")
	}
	values = append(values, "LOWER-CASE-KEY-VALUE-1", "UPPER-CASE-KEY-VALUE-2")

	events := e.srv.TrailEvents()
	if len(events) < 15 {
		t.Fatalf("only %d events recorded", len(events))
	}
	file, err := os.ReadFile(filepath.Join(dir, "s.trail.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	looked := lookup(t, e.trail, &cloudtrail.LookupEventsInput{})
	var served strings.Builder
	for _, ev := range looked {
		served.WriteString(aws.ToString(ev.CloudTrailEvent))
	}
	for i, v := range values {
		for j, ev := range events {
			if rotationtest.Leaks(ev, v) {
				t.Errorf("recorded event %d holds secret value %d", j, i)
			}
		}
		if rotationtest.Leaks(string(file), v) {
			t.Errorf("the trail file holds secret value %d", i)
		}
		if rotationtest.Leaks(served.String(), v) {
			t.Errorf("LookupEvents serves secret value %d", i)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestTrailRotationEvents: a rotation whose function fails is recorded as
// RotationFailed; one whose AWSPENDING is removed by hand while it runs, as
// RotationAbandoned (a manual override), not as a failure.
func TestTrailRotationEvents(t *testing.T) {
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	srv, err := smlocal.New(smlocal.Options{Retry: smlocal.RetryPolicy{Attempts: 1}, Invoker: smlocal.InvokerFunc(func(ctx context.Context, _ string, ev smlocal.Event) error {
		if strings.Contains(ev.SecretId, "abandon") && ev.Step == smlocal.StepCreate {
			entered <- struct{}{}
			<-release
			return nil
		}
		return errors.New("the database refused the master's password")
	})})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()
	e := &trailEnv{srv: srv, url: hs.URL}
	c := e.sm(userKey)
	ct := cloudtrail.New(cloudtrail.Options{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL), Credentials: credentials.NewStaticCredentialsProvider(userKey, "x", "")})
	names := func(arn string) []string {
		var out []string
		for _, ev := range lookup(t, ct, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, arn)}) {
			if n := aws.ToString(ev.EventName); strings.HasPrefix(n, "Rotation") {
				out = append(out, n)
			}
		}
		return out
	}

	failing := aws.ToString(must(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("fails"), SecretString: aws.String("v")})).ARN)
	must(c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(failing), RotationLambdaARN: aws.String(rotFnARN)}))
	if r, err := srv.WaitRotation(ctx, failing); err != nil || r.State != smlocal.RotationFailed {
		t.Fatalf("rotation: %v %+v", err, r)
	}
	if got := names(failing); !slices.Equal(got, []string{"RotationFailed", "RotationStarted"}) {
		t.Errorf("failed rotation's events (newest first) = %v", got)
	}

	abandoned := aws.ToString(must(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("abandon"), SecretString: aws.String("v")})).ARN)
	rot := must(c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(abandoned), RotationLambdaARN: aws.String(rotFnARN)}))
	<-entered
	must(c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(abandoned), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: rot.VersionId}))
	close(release)
	if r, err := srv.WaitRotation(ctx, abandoned); err != nil || r.State != smlocal.RotationFailed {
		t.Fatalf("rotation: %v %+v", err, r)
	}
	if got := names(abandoned); !slices.Equal(got, []string{"RotationAbandoned", "RotationStarted"}) {
		t.Errorf("abandoned rotation's events (newest first) = %v", got)
	}
}

// TestTrailSurvivesACutShortAppend: a last record cut short (a crash
// mid-append) is dropped at load; the events before it are kept and new
// ones are appended on lines of their own.
func TestTrailSurvivesACutShortAppend(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	e := startTrail(t, state)
	ctx := context.Background()
	arn := aws.ToString(must(e.sm(appKey).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("cut"), SecretString: aws.String("v")})).ARN)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	trailFile := filepath.Join(dir, "state.trail.jsonl")
	f, err := os.OpenFile(trailFile, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"eventVersion":"1.09","eventTime":"2026-06-01T12:00:0`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e2 := startTrail(t, state)
	must(e2.sm(appKey).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}))
	got := lookup(t, e2.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, arn)})
	if len(got) != 2 || aws.ToString(got[0].EventName) != "GetSecretValue" || aws.ToString(got[1].EventName) != "CreateSecret" {
		t.Fatalf("after a cut-short append: %d events", len(got))
	}
	for _, ev := range got {
		record(t, ev) // each is whole JSON
	}
}

// A read in a BatchGetSecretValue is recorded as AWS records it: besides
// the batch's own event, a GetSecretValue per secret (returned or refused),
// naming the secret, so a look-up by the secret finds who read it.
func TestTrailBatchReadsNameEachSecret(t *testing.T) {
	e := startTrail(t, "")
	ctx := context.Background()
	admin := e.sm(userKey)
	var arns []string
	for _, name := range []string{"batch-a", "batch-b"} {
		out := must(admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("value-of-" + name)}))
		arns = append(arns, aws.ToString(out.ARN))
	}
	out := must(e.sm(appKey).BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{arns[0], "batch-b", "batch-missing"}}))
	if len(out.SecretValues) != 2 || len(out.Errors) != 1 {
		t.Fatalf("batch returned %d values and %d errors, want 2 and 1", len(out.SecretValues), len(out.Errors))
	}
	for _, arn := range arns {
		var reads []cttypes.Event
		for _, ev := range lookup(t, e.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyResourceName, arn)}) {
			if aws.ToString(ev.EventName) == "GetSecretValue" {
				reads = append(reads, ev)
			}
		}
		if len(reads) != 1 {
			t.Fatalf("%s: %d GetSecretValue events, want the batch's one", arn, len(reads))
		}
		var rec struct {
			UserIdentity      struct{ ARN string }
			RequestParameters map[string]string
		}
		if err := json.Unmarshal([]byte(aws.ToString(reads[0].CloudTrailEvent)), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.UserIdentity.ARN != appARN || rec.RequestParameters["secretId"] != arn {
			t.Errorf("%s: the batch read is recorded as by %s of %q, want %s of the secret's ARN", arn, rec.UserIdentity.ARN, rec.RequestParameters["secretId"], appARN)
		}
		if rotationtest.Leaks(aws.ToString(reads[0].CloudTrailEvent), "value-of-batch-a") || rotationtest.Leaks(aws.ToString(reads[0].CloudTrailEvent), "value-of-batch-b") {
			t.Errorf("%s: the recorded read holds a secret value", arn)
		}
	}
	var refused int
	for _, ev := range lookup(t, e.trail, &cloudtrail.LookupEventsInput{LookupAttributes: attr(cttypes.LookupAttributeKeyEventName, "GetSecretValue")}) {
		if strings.Contains(aws.ToString(ev.CloudTrailEvent), `"batch-missing"`) && strings.Contains(aws.ToString(ev.CloudTrailEvent), `"errorCode":"ResourceNotFoundException"`) {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("%d refused GetSecretValue events for the missing secret, want 1", refused)
	}
}

// A principal named by a role with a path is recorded as AWS records a
// session of it: the path is not in the assumed-role ARN, it is in the
// session issuer's, which is what aws:PrincipalArn and rotary audit match.
func TestTrailKeepsTheRolePath(t *testing.T) {
	const key = "AKIASERVICEROLE00001"
	srv, err := smlocal.New(smlocal.Options{Principals: localauth.New(localauth.Principal{AccessKeyID: key, ARN: "arn:aws:iam::123456789012:role/service-role/orders-app"})})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()
	e := &trailEnv{srv: srv, url: hs.URL}
	must(e.sm(key).CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("pathed"), SecretString: aws.String("v")}))
	var rec struct {
		UserIdentity struct {
			ARN            string
			SessionContext struct{ SessionIssuer struct{ ARN string } }
		}
	}
	events := srv.TrailEvents()
	if len(events) == 0 {
		t.Fatal("nothing recorded")
	}
	if err := json.Unmarshal([]byte(events[len(events)-1]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.UserIdentity.ARN != "arn:aws:sts::123456789012:assumed-role/orders-app/"+key ||
		rec.UserIdentity.SessionContext.SessionIssuer.ARN != "arn:aws:iam::123456789012:role/service-role/orders-app" {
		t.Errorf("recorded as %s issued by %s", rec.UserIdentity.ARN, rec.UserIdentity.SessionContext.SessionIssuer.ARN)
	}
}
