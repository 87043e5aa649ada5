package smlocal

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// TestBatchGetSecretValue: AWSCURRENT of each secret named (by name, ARN
// or partial ARN), with its stages; a secret that cannot be read is in
// Errors with GetSecretValue's exception while the call succeeds;
// SecretIdList and Filters are exclusive, at most 20 secrets.
func TestBatchGetSecretValue(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	a, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("batch/a"), SecretString: aws.String("value-a")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("batch/b"), SecretString: aws.String("value-b")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: b.ARN, SecretString: aws.String("value-b2")}); err != nil {
		t.Fatal(err)
	}
	gone, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("batch/gone"), SecretString: aws.String("value-gone")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: gone.ARN}); err != nil {
		t.Fatal(err)
	}
	partialB := aws.ToString(b.ARN)[:len(aws.ToString(b.ARN))-7]
	out, err := c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"batch/a", partialB, "batch/missing", aws.ToString(gone.ARN)}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range out.SecretValues {
		got[aws.ToString(v.ARN)] = aws.ToString(v.SecretString)
		if len(v.VersionStages) != 1 || v.VersionStages[0] != "AWSCURRENT" || aws.ToString(v.VersionId) == "" || v.CreatedDate == nil {
			t.Errorf("%s: stages %v, version %q, created %v", aws.ToString(v.Name), v.VersionStages, aws.ToString(v.VersionId), v.CreatedDate)
		}
	}
	if len(got) != 2 || got[aws.ToString(a.ARN)] != "value-a" || got[aws.ToString(b.ARN)] != "value-b2" {
		t.Fatalf("SecretValues = %v, want batch/a and batch/b's AWSCURRENT", got)
	}
	errs := map[string]string{}
	for _, e := range out.Errors {
		errs[aws.ToString(e.SecretId)] = aws.ToString(e.ErrorCode)
	}
	if errs["batch/missing"] != excResourceNotFound || errs[aws.ToString(gone.ARN)] != excInvalidRequest || len(errs) != 2 {
		t.Fatalf("Errors = %v, want ResourceNotFoundException for batch/missing and InvalidRequestException for the deleted secret", errs)
	}

	f, err := c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"batch/"}}}, MaxResults: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.SecretValues) != 1 || aws.ToString(f.SecretValues[0].SecretString) != "value-a" || aws.ToString(f.NextToken) == "" {
		t.Fatalf("filtered page 1: %d values, next %q", len(f.SecretValues), aws.ToString(f.NextToken))
	}
	f, err = c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"batch/"}}}, MaxResults: aws.Int32(1), NextToken: f.NextToken})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.SecretValues) != 1 || aws.ToString(f.SecretValues[0].SecretString) != "value-b2" || aws.ToString(f.NextToken) != "" {
		t.Fatalf("filtered page 2: %d values, next %q (the deleted secret is left out)", len(f.SecretValues), aws.ToString(f.NextToken))
	}

	many := make([]string, 21)
	for i := range many {
		many[i] = "batch/a"
	}
	for name, in := range map[string]*secretsmanager.BatchGetSecretValueInput{
		"neither":  {},
		"both":     {SecretIdList: []string{"batch/a"}, Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"batch/"}}}},
		"21 names": {SecretIdList: many},
	} {
		_, err := c.BatchGetSecretValue(ctx, in)
		var ip *types.InvalidParameterException
		if !errors.As(err, &ip) {
			t.Errorf("%s: err = %v, want InvalidParameterException", name, err)
		}
	}
}

// TestLookupByNameAfterRecreate: the name index (state.refs) never answers
// with a secret that is gone: a name deleted and created again names the
// new secret, by name and by partial ARN, and the old partial ARN names
// nothing.
func TestLookupByNameAfterRecreate(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	create := func(value string) string {
		out, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("index/a"), SecretString: aws.String(value)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ARN)
	}
	get := func(id string) (string, error) {
		out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.SecretString), nil
	}
	old := create("old")
	if v, err := get("index/a"); err != nil || v != "old" {
		t.Fatalf("by name: %q, %v", v, err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("index/a"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("index/a"); err == nil {
		t.Fatal("a deleted secret is still found by name")
	}
	cur := create("new")
	for _, id := range []string{"index/a", cur[:len(cur)-7]} {
		if v, err := get(id); err != nil || v != "new" {
			t.Fatalf("%s: %q, %v; want the new secret", id, v, err)
		}
	}
	if old[:len(old)-7] != cur[:len(cur)-7] {
		t.Fatal("the two ARNs differ before their suffix; the test proves nothing about partial ARNs")
	}
	if _, err := get(old); err == nil {
		t.Fatal("the deleted secret's ARN still names a secret")
	}
}
