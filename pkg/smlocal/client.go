package smlocal

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Fake credentials that clients of a local server sign with; the server
// does not check signatures.
const (
	LocalAccessKeyID     = "AKIALOCALROTARY00000"
	LocalSecretAccessKey = "local-stack-not-a-secret"
)

// NewClient returns a real SDK client for the local Secrets Manager at url,
// in region us-east-1 (or the given region), signing with fake credentials.
func NewClient(url string, region ...string) *secretsmanager.Client {
	r := "us-east-1"
	if len(region) > 0 && region[0] != "" {
		r = region[0]
	}
	return secretsmanager.New(secretsmanager.Options{
		Region:       r,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(LocalAccessKeyID, LocalSecretAccessKey, ""),
	})
}
