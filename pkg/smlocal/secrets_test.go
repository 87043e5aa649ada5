package smlocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestCreateSecretReturnsRealFormatARN(t *testing.T) {
	_, c := newServer(t, Options{Region: "eu-west-1", AccountID: "111122223333"})
	arn := createSecret(t, c, "app/db", `{"password":"x"}`)
	re := regexp.MustCompile(`^arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/db-[A-Za-z0-9]{6}$`)
	if !re.MatchString(arn) {
		t.Fatalf("ARN = %s, want it to match %s", arn, re)
	}
}

func TestSecretIdAcceptsNameFullARNAndPartialARN(t *testing.T) {
	_, c := newServer(t, Options{})
	arn := createSecret(t, c, "svc-key", "v1")
	for _, tc := range []struct{ name, id string }{
		{"name", "svc-key"},
		{"full ARN", arn},
		{"partial ARN", arn[:len(arn)-7]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(tc.id)})
			if err != nil {
				t.Fatalf("DescribeSecret(%s): %v", tc.id, err)
			}
			if aws.ToString(out.ARN) != arn {
				t.Fatalf("ARN = %s, want %s", aws.ToString(out.ARN), arn)
			}
		})
	}
}

func TestUnknownSecretIsResourceNotFound(t *testing.T) {
	_, c := newServer(t, Options{})
	_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("error = %v, want *types.ResourceNotFoundException", err)
	}
	wantAPIError(t, err, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

func TestCreateSecretTwiceIsResourceExists(t *testing.T) {
	_, c := newServer(t, Options{})
	createSecret(t, c, "dup", "v")
	_, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("dup"), SecretString: aws.String("w")})
	wantAPIError(t, err, "ResourceExistsException", "The operation failed because the secret dup already exists.")
}

func TestCreateSecretRejectsInvalidInput(t *testing.T) {
	_, c := newServer(t, Options{})
	for _, tc := range []struct {
		name string
		in   *secretsmanager.CreateSecretInput
		code string
		msg  string
	}{
		{"bad name", &secretsmanager.CreateSecretInput{Name: aws.String("has space")}, "InvalidParameterException", "Invalid name."},
		{"both values", &secretsmanager.CreateSecretInput{Name: aws.String("both"), SecretString: aws.String("s"), SecretBinary: []byte{1}}, "InvalidParameterException", msgBothValues},
		{"short token", &secretsmanager.CreateSecretInput{Name: aws.String("tok"), SecretString: aws.String("s"), ClientRequestToken: aws.String("short")}, "InvalidParameterException", "ClientRequestToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateSecret(context.Background(), tc.in)
			wantAPIError(t, err, tc.code, tc.msg)
		})
	}
}

func TestSecretBinaryRoundTrips(t *testing.T) {
	_, c := newServer(t, Options{})
	bin := []byte{0, 1, 2, 0xfe, 0xff}
	if _, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretBinary: bin}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.SecretBinary, bin) || out.SecretString != nil {
		t.Fatalf("got binary %s string set=%v, want %s", fp(string(out.SecretBinary)), out.SecretString != nil, fp(string(bin)))
	}
}

func TestDescribeSecretReportsFields(t *testing.T) {
	clk := newFakeClock()
	_, c := newServer(t, Options{Clock: clk.Now})
	ctx := context.Background()
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("desc"), SecretString: aws.String("v1"), Description: aws.String("the db"),
		KmsKeyId: aws.String("alias/mine"), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("core")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Hour)
	current(t, c, "desc")
	out, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("desc")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Description) != "the db" || aws.ToString(out.KmsKeyId) != "alias/mine" {
		t.Errorf("Description, KmsKeyId = %q, %q", aws.ToString(out.Description), aws.ToString(out.KmsKeyId))
	}
	if len(out.Tags) != 1 || aws.ToString(out.Tags[0].Key) != "team" {
		t.Errorf("Tags = %v", out.Tags)
	}
	if out.RotationEnabled != nil {
		t.Errorf("RotationEnabled = %v, want absent for a secret never configured for rotation", *out.RotationEnabled)
	}
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	if out.LastAccessedDate == nil || !out.LastAccessedDate.Equal(day) {
		t.Errorf("LastAccessedDate = %v, want %v (day precision)", out.LastAccessedDate, day)
	}
	if out.LastChangedDate == nil || !out.LastChangedDate.Equal(clk.Now().Add(-3*time.Hour)) {
		t.Errorf("LastChangedDate = %v", out.LastChangedDate)
	}
	if len(out.VersionIdsToStages) != 1 {
		t.Errorf("VersionIdsToStages = %v, want one version", out.VersionIdsToStages)
	}
	for _, st := range out.VersionIdsToStages {
		if len(st) != 1 || st[0] != "AWSCURRENT" {
			t.Errorf("stages = %v, want [AWSCURRENT]", st)
		}
	}
}

func TestDeletedSecretRefusesOperations(t *testing.T) {
	clk := newFakeClock()
	_, c := newServer(t, Options{Clock: clk.Now})
	ctx := context.Background()
	createSecret(t, c, "gone", "v")
	del, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("gone"), RecoveryWindowInDays: aws.Int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(7 * 24 * time.Hour); !aws.ToTime(del.DeletionDate).Equal(want) {
		t.Errorf("DeletionDate = %v, want %v", del.DeletionDate, want)
	}
	ops := map[string]func() error{
		"GetSecretValue": func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("gone")})
			return err
		},
		"PutSecretValue": func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("gone"), SecretString: aws.String("w")})
			return err
		},
		"RotateSecret": func() error {
			_, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("gone"), RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:f")})
			return err
		},
		"TagResource": func() error {
			_, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("gone"), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			return err
		},
		"DeleteSecret again": func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("gone")})
			return err
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			wantAPIError(t, op(), "InvalidRequestException", msgMarkedForDeletion)
		})
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("gone")})
	if err != nil || d.DeletedDate == nil || !d.DeletedDate.Equal(aws.ToTime(del.DeletionDate)) {
		t.Fatalf("DescribeSecret of a deleted secret: %v; want DeletedDate = the scheduled deletion date %v", err, del.DeletionDate)
	}
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("gone")})
	wantAPIError(t, err, "InvalidRequestException", "already scheduled for deletion")

	if _, err := c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("gone")}); err != nil {
		t.Fatal(err)
	}
	if v, _ := current(t, c, "gone"); v != "v" {
		t.Fatalf("after RestoreSecret the value is %s, want the old one", fp(v))
	}
}

func TestDeletedSecretIsPurgedAfterRecoveryWindow(t *testing.T) {
	clk := newFakeClock()
	_, c := newServer(t, Options{Clock: clk.Now})
	ctx := context.Background()
	createSecret(t, c, "purge", "v")
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("purge"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(7*24*time.Hour + time.Second)
	_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("purge")})
	wantAPIError(t, err, "ResourceNotFoundException", msgSecretNotFound)
	createSecret(t, c, "purge", "again") // the name is free again
}

func TestDeleteSecretValidatesRecoveryWindow(t *testing.T) {
	_, c := newServer(t, Options{})
	createSecret(t, c, "win", "v")
	for _, tc := range []struct {
		name string
		in   *secretsmanager.DeleteSecretInput
		msg  string
	}{
		{"too short", &secretsmanager.DeleteSecretInput{RecoveryWindowInDays: aws.Int64(6)}, "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."},
		{"too long", &secretsmanager.DeleteSecretInput{RecoveryWindowInDays: aws.Int64(31)}, "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."},
		{"both", &secretsmanager.DeleteSecretInput{RecoveryWindowInDays: aws.Int64(7), ForceDeleteWithoutRecovery: aws.Bool(true)}, "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.SecretId = aws.String("win")
			_, err := c.DeleteSecret(context.Background(), tc.in)
			wantAPIError(t, err, "InvalidParameterException", tc.msg)
		})
	}
}

func TestForceDeleteRemovesSecretAtOnce(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	old := createSecret(t, c, "force", "v")
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("force"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(old)})
	wantAPIError(t, err, "ResourceNotFoundException", msgSecretNotFound)
	if arn := createSecret(t, c, "force", "w"); arn == old {
		t.Fatalf("re-created secret reuses ARN %s, want a new suffix", arn)
	}
}

func TestTagAndUntagResource(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	createSecret(t, c, "tags", "v")
	tags := []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("2")}}
	if _, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tags"), Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tags"), Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("9")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("tags"), TagKeys: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("tags")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tags) != 1 || aws.ToString(out.Tags[0].Key) != "a" || aws.ToString(out.Tags[0].Value) != "9" {
		t.Fatalf("Tags = %+v, want only a=9", out.Tags)
	}
}

func TestUpdateSecretChangesValueAndDescription(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	createSecret(t, c, "upd", "v1")
	_, oldVer := current(t, c, "upd")
	out, err := c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd"), SecretString: aws.String("v2"), Description: aws.String("new")})
	if err != nil {
		t.Fatal(err)
	}
	v, ver := current(t, c, "upd")
	if v != "v2" || ver != aws.ToString(out.VersionId) {
		t.Fatalf("current = %s/%s, want the new value at %s", fp(v), ver, aws.ToString(out.VersionId))
	}
	prev, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("upd"), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.VersionId) != oldVer {
		t.Fatalf("AWSPREVIOUS = %v, %v; want version %s", prev, err, oldVer)
	}
}

func TestListSecretsFiltersAndPaginates(t *testing.T) {
	clk := newFakeClock()
	_, c := newServer(t, Options{Clock: clk.Now})
	ctx := context.Background()
	for i, name := range []string{"prod/db", "prod/api", "dev/db", "other"} {
		clk.Advance(time.Second)
		var desc *string
		if i == 0 {
			desc = aws.String("Main database")
		}
		_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(name), SecretString: aws.String("v"), Description: desc,
			Tags: []types.Tag{{Key: aws.String(fmt.Sprintf("k%d", i%2)), Value: aws.String(strings.Split(name, "/")[0])}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	names := func(filters []types.Filter) []string {
		t.Helper()
		var got []string
		p := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{Filters: filters, MaxResults: aws.Int32(1)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range out.SecretList {
				got = append(got, aws.ToString(e.Name))
			}
		}
		return got
	}
	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    string
	}{
		{"no filter, one per page", nil, "prod/db,prod/api,dev/db,other"},
		{"name prefix", []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"prod/"}}}, "prod/db,prod/api"},
		{"name negated", []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"!prod"}}}, "dev/db,other"},
		{"tag-key", []types.Filter{{Key: types.FilterNameStringTypeTagKey, Values: []string{"k1"}}}, "prod/api,other"},
		{"tag-value", []types.Filter{{Key: types.FilterNameStringTypeTagValue, Values: []string{"dev"}}}, "dev/db"},
		{"description is not case-sensitive", []types.Filter{{Key: types.FilterNameStringTypeDescription, Values: []string{"MAIN"}}}, "prod/db"},
		{"all matches words anywhere", []types.Filter{{Key: types.FilterNameStringTypeAll, Values: []string{"DB"}}}, "prod/db,dev/db"},
		{"all splits the value into words", []types.Filter{{Key: types.FilterNameStringTypeAll, Values: []string{"mainDatabase"}}}, "prod/db"},
		{"two filters AND", []types.Filter{
			{Key: types.FilterNameStringTypeTagKey, Values: []string{"k0"}},
			{Key: types.FilterNameStringTypeName, Values: []string{"prod"}},
		}, "prod/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(names(tc.filters), ","); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("invalid NextToken", func(t *testing.T) {
		_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{NextToken: aws.String("garbage")})
		var inv *types.InvalidNextTokenException
		if !errors.As(err, &inv) {
			t.Fatalf("error = %v, want InvalidNextTokenException", err)
		}
	})
}

func TestUnknownOperationIsAClearError(t *testing.T) {
	_, c := newServer(t, Options{})
	_, err := c.ReplicateSecretToRegions(context.Background(), &secretsmanager.ReplicateSecretToRegionsInput{SecretId: aws.String("x"), AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("eu-west-1")}}})
	wantAPIError(t, err, "UnknownOperationException", "operation ReplicateSecretToRegions is not supported")
}

func TestInternalServiceErrorIsHTTP500(t *testing.T) {
	dir := t.TempDir()
	srv, c := newServer(t, Options{StateFile: dir + "/missing-dir/state.json"})
	_ = srv
	_, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("x"), SecretString: aws.String("v")})
	var ise *types.InternalServiceError
	if !errors.As(err, &ise) {
		t.Fatalf("error = %v, want *types.InternalServiceError", err)
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
		t.Fatalf("HTTP status = %v, want 500", err)
	}
}

func TestGetRandomPassword(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		in    *secretsmanager.GetRandomPasswordInput
		check func(string) bool
	}{
		{"default is 32 characters with every type", &secretsmanager.GetRandomPasswordInput{}, func(p string) bool {
			return len(p) == 32 && strings.ContainsAny(p, "0123456789") && strings.ContainsAny(p, "abcdefghijklmnopqrstuvwxyz") &&
				strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(p, punctuation)
		}},
		{"length and exclusions", &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(64), ExcludePunctuation: aws.Bool(true), ExcludeCharacters: aws.String("abc")}, func(p string) bool {
			return len(p) == 64 && !strings.ContainsAny(p, punctuation+"abc")
		}},
		{"include space", &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(5), ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludeNumbers: aws.Bool(true), ExcludePunctuation: aws.Bool(true), IncludeSpace: aws.Bool(true)}, func(p string) bool {
			return p == "     "
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.GetRandomPassword(ctx, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(aws.ToString(out.RandomPassword)) {
				t.Fatalf("password %s (length %d) breaks the policy", fp(aws.ToString(out.RandomPassword)), len(aws.ToString(out.RandomPassword)))
			}
		})
	}
	t.Run("length out of range", func(t *testing.T) {
		_, err := c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4097)})
		wantAPIError(t, err, "InvalidParameterException", "PasswordLength")
	})
	t.Run("everything excluded", func(t *testing.T) {
		_, err := c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludeNumbers: aws.Bool(true), ExcludePunctuation: aws.Bool(true)})
		wantAPIError(t, err, "InvalidParameterException", "excluded")
	})
	t.Run("shorter than the types it requires", func(t *testing.T) {
		_, err := c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(3)})
		wantAPIError(t, err, "InvalidParameterException", "RequireEachIncludedType")
	})
}
