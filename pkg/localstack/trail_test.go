package localstack

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestTrailTellsWhoIsWho rotates a secret with the real random-secret
// function and reads it as an application: the audit trail names the
// function's role session for the function's calls, the operator for the
// CLI's and the application's principal for its read; the function's role
// is served by GetFunctionConfiguration; no value of any version is in any
// recorded event.
func TestTrailTellsWhoIsWho(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const appKey, appARN = "AKIAORDERSAPP0000001", "arn:aws:sts::123456789012:assumed-role/orders-app/orders-task"
	stack, err := Start(ctx, Config{
		Functions: []string{"random-secret"}, BinDir: t.TempDir(), StateFile: t.TempDir() + "/state.json",
		FunctionEnv: map[string][]string{"random-secret": {"ROTATE_FIELDS=apiKey:32:alnum"}},
		Principals:  []localauth.Principal{{AccessKeyID: appKey, ARN: appARN}},
	})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("start the local stack: %v", err)
		}
		t.Skipf("skipping (set CI=true to fail instead): start the local stack: %v", err)
	}
	t.Cleanup(func() { stack.Close() })
	initial := `{"apiKey":"initial-api-key-\"quoted\"-1","clientId":"orders"}`
	created, err := stack.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("trail/who"), SecretString: aws.String(initial)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(created.ARN)
	if _, err := stack.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(FunctionARN("random-secret"))}); err != nil {
		t.Fatal(err)
	}
	if r, err := stack.SM.WaitRotation(ctx, arn); err != nil || r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation: %v %s %s", err, r.State, r.Err)
	}
	read, err := stack.ClientAs(appKey).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}

	who := map[string]map[string]bool{} // eventName -> principal ARNs
	p := cloudtrail.NewLookupEventsPaginator(stack.CloudTrailClient(), &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyResourceName, AttributeValue: aws.String(arn)}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			var rec struct {
				UserIdentity struct{ ARN, InvokedBy string }
			}
			if err := json.Unmarshal([]byte(aws.ToString(ev.CloudTrailEvent)), &rec); err != nil {
				t.Fatal(err)
			}
			name := aws.ToString(ev.EventName)
			if who[name] == nil {
				who[name] = map[string]bool{}
			}
			who[name][rec.UserIdentity.ARN+rec.UserIdentity.InvokedBy] = true
		}
	}
	fn := FunctionPrincipalARN("random-secret")
	for name, want := range map[string]string{
		"CreateSecret": OperatorPrincipalARN(), "RotateSecret": OperatorPrincipalARN(),
		"PutSecretValue": fn, "UpdateSecretVersionStage": fn,
		"RotationStarted": "secretsmanager.amazonaws.com", "RotationSucceeded": "secretsmanager.amazonaws.com",
	} {
		if len(who[name]) != 1 || !who[name][want] {
			t.Errorf("%s recorded as %v, want %s", name, who[name], want)
		}
	}
	if !who["GetSecretValue"][appARN] || !who["GetSecretValue"][fn] {
		t.Errorf("GetSecretValue recorded as %v, want the application and the function among them", who["GetSecretValue"])
	}

	conf, err := stack.LambdaClient().GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(FunctionARN("random-secret"))})
	if err != nil || aws.ToString(conf.Role) != FunctionRoleARN("random-secret") {
		t.Fatalf("GetFunctionConfiguration: role %v, %v; want %s", aws.ToString(conf.Role), err, FunctionRoleARN("random-secret"))
	}

	var current map[string]string
	_ = json.Unmarshal([]byte(aws.ToString(read.SecretString)), &current)
	values := []string{initial, aws.ToString(read.SecretString), current["apiKey"], `initial-api-key-"quoted"-1`}
	events := stack.SM.TrailEvents()
	trail, err := os.ReadFile(stack.SM.TrailFile())
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		for j, ev := range events {
			if rotationtest.Leaks(ev, v) {
				t.Errorf("event %d holds value %d", j, i)
			}
		}
		if rotationtest.Leaks(string(trail), v) {
			t.Errorf("the trail file holds value %d", i)
		}
	}
}
