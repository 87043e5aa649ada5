package localstack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// Who is who on the local stack. Each function signs its calls with its own
// access key, standing for a session of its own role, as a Lambda function
// signs with its execution role's session on AWS; the operator (the CLI,
// with smlocal.LocalAccessKeyID) is an IAM user. So the local audit trail
// tells the suite from the operator and from applications, whose keys
// Config.Principals (`rotary local --principal`) adds.

// OperatorPrincipalARN is who smlocal.LocalAccessKeyID, the key the CLI and
// the stack's own clients sign with, stands for.
func OperatorPrincipalARN() string {
	return fmt.Sprintf("arn:aws:iam::%s:user/local-operator", AccountID)
}

// FunctionRoleARN is the execution role of a local function (by directory
// name), as GetFunctionConfiguration reports it.
func FunctionRoleARN(name string) string {
	return fmt.Sprintf("arn:aws:iam::%s:role/rotary-%s", AccountID, name)
}

// FunctionPrincipalARN is the assumed-role session a local function's calls
// are recorded with.
func FunctionPrincipalARN(name string) string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/rotary-%s/%s", AccountID, name, name)
}

// FunctionAccessKeyID is the access key a local function signs with.
func FunctionAccessKeyID(name string) string {
	var b strings.Builder
	b.WriteString("ASIALOCAL")
	for _, r := range strings.ToUpper(name) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	for b.Len() < 20 {
		b.WriteByte('0')
	}
	return b.String()
}

// functionSecretAccessKey is the (fake, local) secret of a function's key.
func functionSecretAccessKey(name string) string { return "local-" + name + "-not-a-secret" }

// directory is the stack's principals: the operator, every function, and
// the extra ones (which may replace either).
func directory(functions []string, extra []localauth.Principal) *localauth.Directory {
	d := localauth.New(localauth.Principal{AccessKeyID: smlocal.LocalAccessKeyID, SecretAccessKey: smlocal.LocalSecretAccessKey, ARN: OperatorPrincipalARN()})
	for _, name := range functions {
		d.Add(localauth.Principal{AccessKeyID: FunctionAccessKeyID(name), SecretAccessKey: functionSecretAccessKey(name), ARN: FunctionPrincipalARN(name)})
	}
	for _, p := range extra {
		d.Add(p)
	}
	return d
}

// Principals is the stack's directory of local access keys.
func (s *Stack) Principals() *localauth.Directory { return s.principals }

// ClientAs returns a Secrets Manager client signing with accessKeyID (one
// of Config.Principals, or any key: an unknown one is recorded as
// smlocal.UnknownPrincipalName), as an application with that key would.
func (s *Stack) ClientAs(accessKeyID string) *secretsmanager.Client {
	secret := "local-not-a-secret"
	if p, ok := s.principals.Lookup(accessKeyID); ok && p.SecretAccessKey != "" {
		secret = p.SecretAccessKey
	}
	return secretsmanager.New(secretsmanager.Options{
		Region: Region, BaseEndpoint: aws.String(s.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(accessKeyID, secret, ""),
	})
}

// CloudTrailClient returns a real SDK CloudTrail client for the stack's
// audit trail (LookupEvents), signing as the operator.
func (s *Stack) CloudTrailClient() *cloudtrail.Client {
	return cloudtrail.New(cloudtrail.Options{
		Region: Region, BaseEndpoint: aws.String(s.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(smlocal.LocalAccessKeyID, smlocal.LocalSecretAccessKey, ""),
	})
}

// functionConfiguration serves Lambda's GetFunctionConfiguration for the
// stack's functions: enough for a client to learn a function's role.
func (s *Stack) functionConfiguration(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("function")
	arn, _, ok := s.lookup(id)
	if !ok {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Function not found: %s; this stack runs %s", id, strings.Join(s.functionARNs(), ", ")))
		return
	}
	name := strings.TrimPrefix(arn[strings.LastIndex(arn, ":")+1:], "rotary-")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"FunctionName": "rotary-" + name, "FunctionArn": arn, "Role": FunctionRoleARN(name),
		"Runtime": "provided.al2023", "Handler": "bootstrap", "State": "Active", "PackageType": "Zip",
		"Architectures": []string{"arm64"},
	})
}
