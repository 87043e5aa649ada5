package localauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

var (
	app    = Principal{AccessKeyID: "AKIAAPPLICATION00001", SecretAccessKey: "app-secret-key", ARN: "arn:aws:iam::123456789012:role/app"}
	reader = Principal{AccessKeyID: "AKIAREADONLY00000002", ARN: "arn:aws:iam::123456789012:user/reader"}
)

// A real aws-sdk-go-v2 client signs; the server verifies and learns who.
func TestVerifyRealSDKClient(t *testing.T) {
	dir := New(app, reader)
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p, err := dir.Verify(r, body, "secretsmanager", "eu-west-1", time.Now())
		if err != nil {
			var e *Error
			errors.As(err, &e)
			got = append(got, "refused "+e.Code)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"` + e.Code + `","message":"` + e.Message + `"}`))
			return
		}
		got = append(got, "accepted "+p.ARN)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"Name":"s","ARN":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:s-abcdef"}`))
	}))
	defer srv.Close()

	client := func(key, secret, region string) *secretsmanager.Client {
		return secretsmanager.New(secretsmanager.Options{
			Region:           region,
			BaseEndpoint:     aws.String(srv.URL),
			Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
			RetryMaxAttempts: 1,
		})
	}
	ctx := context.Background()
	in := &secretsmanager.DescribeSecretInput{SecretId: aws.String("s")}
	if _, err := client(app.AccessKeyID, app.SecretAccessKey, "eu-west-1").DescribeSecret(ctx, in); err != nil {
		t.Fatalf("a correctly signed request was refused: %v", err)
	}
	_, errWrong := client(app.AccessKeyID, "not-the-secret", "eu-west-1").DescribeSecret(ctx, in)
	_, errUnknown := client("AKIAUNKNOWNKEY000003", "x", "eu-west-1").DescribeSecret(ctx, in)
	_, errNoSecret := client(reader.AccessKeyID, "anything", "eu-west-1").DescribeSecret(ctx, in)
	_, errRegion := client(app.AccessKeyID, app.SecretAccessKey, "us-east-1").DescribeSecret(ctx, in)
	for name, err := range map[string]error{"wrong secret": errWrong, "unknown key": errUnknown, "key without secret": errNoSecret, "other region": errRegion} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	want := []string{
		"accepted " + app.ARN,
		"refused InvalidSignatureException",
		"refused UnrecognizedClientException",
		"refused UnrecognizedClientException",
		"refused InvalidSignatureException",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("server saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func signed(t *testing.T, p Principal, body string, at time.Time) *http.Request {
	t.Helper()
	r, err := http.NewRequest("POST", "http://abc.lambda-url.eu-west-1.on.aws/issue?role=app", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = int64(len(body))
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: p.AccessKeyID, SecretAccessKey: p.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "lambda", "eu-west-1", at); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifyRefusesTampering(t *testing.T) {
	dir := New(app)
	now := time.Now()
	body := `{"role":"app","ttl":"1h"}`
	if p, err := dir.Verify(signed(t, app, body, now), []byte(body), "lambda", "eu-west-1", now); err != nil || p.ARN != app.ARN {
		t.Fatalf("signed request: %v, %v", p, err)
	}
	cases := map[string]func(*http.Request) ([]byte, string){
		"body changed":  func(r *http.Request) ([]byte, string) { return []byte(`{"role":"admin","ttl":"1h"}`), "lambda" },
		"query changed": func(r *http.Request) ([]byte, string) { r.URL.RawQuery = "role=admin"; return []byte(body), "lambda" },
		"path changed":  func(r *http.Request) ([]byte, string) { r.URL.Path = "/leases"; return []byte(body), "lambda" },
		"header changed": func(r *http.Request) ([]byte, string) {
			r.Header.Set("Content-Type", "text/plain")
			return []byte(body), "lambda"
		},
		"other service": func(r *http.Request) ([]byte, string) { return []byte(body), "secretsmanager" },
		"no signature":  func(r *http.Request) ([]byte, string) { r.Header.Del("Authorization"); return []byte(body), "lambda" },
		"garbled signature": func(r *http.Request) ([]byte, string) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 nonsense")
			return []byte(body), "lambda"
		},
		"signature swapped": func(r *http.Request) ([]byte, string) {
			h := r.Header.Get("Authorization")
			i := strings.LastIndex(h, "=")
			r.Header.Set("Authorization", h[:i+1]+strings.Repeat("0", len(h)-i-1))
			return []byte(body), "lambda"
		},
	}
	for name, tamper := range cases {
		r := signed(t, app, body, now)
		b, service := tamper(r)
		if _, err := dir.Verify(r, b, service, "eu-west-1", now); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), app.SecretAccessKey) {
			t.Errorf("%s: the error quotes the key's secret", name)
		}
	}
	// Signed with an unsigned payload, then given another body: refused.
	unsigned, _ := http.NewRequest("POST", "http://abc.lambda-url.eu-west-1.on.aws/", strings.NewReader(body))
	unsigned.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: app.AccessKeyID, SecretAccessKey: app.SecretAccessKey}, unsigned, "UNSIGNED-PAYLOAD", "lambda", "eu-west-1", now); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.Verify(unsigned, []byte(`{"role":"root","ttl":"1h"}`), "lambda", "eu-west-1", now); err == nil {
		t.Error("an unsigned payload with a swapped body: accepted")
	}
	old := now.Add(-16 * time.Minute)
	if _, err := dir.Verify(signed(t, app, body, old), []byte(body), "lambda", "eu-west-1", now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a signature 16 minutes old: %v, want expired", err)
	}
}

func TestParsePrincipal(t *testing.T) {
	p, err := ParsePrincipal("AKIAAPPLICATION00001:s3cr3t=arn:aws:iam::123456789012:role/app")
	if err != nil || p != (Principal{AccessKeyID: "AKIAAPPLICATION00001", SecretAccessKey: "s3cr3t", ARN: "arn:aws:iam::123456789012:role/app"}) {
		t.Fatalf("got %+v, %v", p, err)
	}
	if p, err := ParsePrincipal("AKIAAPPLICATION00001=arn:aws:sts::123456789012:assumed-role/app/i-0abc"); err != nil || p.SecretAccessKey != "" {
		t.Fatalf("got %+v, %v", p, err)
	}
	for _, bad := range []string{
		"AKIAAPPLICATION00001",
		"short=arn:aws:iam::123456789012:role/app",
		"AKIAAPPLICATION00001=arn:aws:s3:::bucket",
		"AKIAAPPLICATION00001=arn:aws:iam::1234:role/app",
		"AKIAAPPLICATION00001=arn:aws:iam::123456789012:group/g",
		"AKIAAPPLICATION00001:hunter2=role/app",
	} {
		_, err := ParsePrincipal(bad)
		if err == nil {
			t.Errorf("%q: accepted", bad)
			continue
		}
		if !strings.HasPrefix(err.Error(), "--principal") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: error %q should name --principal and never quote the secret", bad, err)
		}
	}
}

func TestAccessKeyID(t *testing.T) {
	r := signed(t, app, "", time.Now())
	if got := AccessKeyID(r); got != app.AccessKeyID {
		t.Errorf("AccessKeyID = %q", got)
	}
	r.Header.Del("Authorization")
	if got := AccessKeyID(r); got != "" {
		t.Errorf("unsigned: AccessKeyID = %q", got)
	}
}
