// Package localauth is the local stack's identity service: a directory of
// local access keys, each naming the IAM principal it stands for (and, when
// known, its secret key), and AWS Signature Version 4 verification of a
// request against that directory.
//
// On AWS, IAM turns a request's access key into a principal ARN, which
// CloudTrail records and resource policies match. The local stack has no
// IAM, so `rotary local --principal KEY=ARN` tells it who each local key is:
// the local Secrets Manager records that ARN in its CloudTrail events, and a
// local Lambda function URL with AWS_IAM auth verifies the signature with the
// key's secret and hands the function the caller's ARN, as AWS does.
//
// The signature is recomputed with aws-sdk-go-v2's own signer over the
// headers the caller signed, so what this package accepts is what the SDK
// produces; a client that signs a header the SDK never signs (User-Agent) is
// refused, which no AWS SDK does.
package localauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Principal is one local access key and who it is.
type Principal struct {
	AccessKeyID string
	// SecretAccessKey verifies signatures; empty when the directory only
	// names who a key is (enough for the audit trail, not for a function URL).
	SecretAccessKey string
	// ARN is the principal as IAM would report it: a user
	// (arn:aws:iam::123456789012:user/alice), a role
	// (arn:aws:iam::123456789012:role/app) or an assumed-role session
	// (arn:aws:sts::123456789012:assumed-role/app/session).
	ARN string
}

// Directory maps access key ids to principals. The zero value is not ready:
// use New. It is safe for concurrent use.
type Directory struct {
	mu    sync.RWMutex
	byKey map[string]Principal
}

// New returns a directory holding ps (later entries replace earlier ones with
// the same access key id).
func New(ps ...Principal) *Directory {
	d := &Directory{byKey: map[string]Principal{}}
	for _, p := range ps {
		d.byKey[p.AccessKeyID] = p
	}
	return d
}

// Add adds or replaces p.
func (d *Directory) Add(p Principal) {
	d.mu.Lock()
	d.byKey[p.AccessKeyID] = p
	d.mu.Unlock()
}

// Lookup returns the principal of an access key id.
func (d *Directory) Lookup(accessKeyID string) (Principal, bool) {
	if d == nil {
		return Principal{}, false
	}
	d.mu.RLock()
	p, ok := d.byKey[accessKeyID]
	d.mu.RUnlock()
	return p, ok
}

// Principals lists the directory, sorted by access key id.
func (d *Directory) Principals() []Principal {
	d.mu.RLock()
	out := make([]Principal, 0, len(d.byKey))
	for _, p := range d.byKey {
		out = append(out, p)
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].AccessKeyID < out[j].AccessKeyID })
	return out
}

// ParsePrincipal reads the `--principal` flag's value: KEY=ARN, or
// KEY:SECRET=ARN to let the key sign requests to a local function URL. The
// error names the flag and never quotes the secret.
func ParsePrincipal(s string) (Principal, error) {
	key, arn, ok := strings.Cut(s, "=")
	if !ok {
		return Principal{}, errors.New("--principal: want KEY=ARN or KEY:SECRET=ARN, e.g. AKIAEXAMPLE=arn:aws:iam::123456789012:role/app")
	}
	var secret string
	key, secret, _ = strings.Cut(key, ":")
	key = strings.TrimSpace(key)
	if !validAccessKeyID(key) {
		return Principal{}, fmt.Errorf("--principal: access key id %q must be 16 to 128 letters and digits", key)
	}
	if !validPrincipalARN(arn) {
		return Principal{}, fmt.Errorf("--principal %s: %q is not an IAM user, role or assumed-role ARN (arn:aws:iam::ACCOUNT:user/NAME, arn:aws:iam::ACCOUNT:role/NAME or arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION)", key, arn)
	}
	return Principal{AccessKeyID: key, SecretAccessKey: secret, ARN: arn}, nil
}

func validAccessKeyID(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func validPrincipalARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[3] != "" || !isAccount(parts[4]) {
		return false
	}
	switch {
	case parts[2] == "iam" && (strings.HasPrefix(parts[5], "user/") || strings.HasPrefix(parts[5], "role/")):
		return len(parts[5]) > len("role/")
	case parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/"):
		return strings.Count(parts[5], "/") >= 2
	}
	return false
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Authorization is the parsed SigV4 Authorization header:
// AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b, Signature=HEX.
type Authorization struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

const algorithm = "AWS4-HMAC-SHA256"

// ParseAuthorization parses a SigV4 Authorization header value.
func ParseAuthorization(h string) (Authorization, error) {
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return Authorization{}, &Error{Code: "IncompleteSignatureException", Message: "Authorization header requires the " + algorithm + " algorithm"}
	}
	var a Authorization
	var haveCred, haveSigned, haveSig bool
	for _, field := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch k {
		case "Credential":
			scope := strings.Split(v, "/")
			if len(scope) != 5 || scope[4] != "aws4_request" {
				return Authorization{}, &Error{Code: "IncompleteSignatureException", Message: "Credential should be scoped to a valid region, service and aws4_request"}
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = scope[0], scope[1], scope[2], scope[3]
			haveCred = true
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
			haveSigned = v != ""
		case "Signature":
			a.Signature = v
			haveSig = v != ""
		}
	}
	if !haveCred || !haveSigned || !haveSig {
		return Authorization{}, &Error{Code: "IncompleteSignatureException", Message: "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters"}
	}
	return a, nil
}

// AccessKeyID returns the access key id of r's SigV4 Authorization header,
// or "" when r is not signed that way.
func AccessKeyID(r *http.Request) string {
	a, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return ""
	}
	return a.AccessKeyID
}

// Error is a refused signature, with the code AWS gives it.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// MaxSkew is how far a request's X-Amz-Date may be from the verifier's
// clock, as on AWS.
const MaxSkew = 15 * time.Minute

// Verify checks r's SigV4 signature (Authorization header form) for service
// in region against the directory, with body as the request's payload (the
// caller has read it; Verify does not consume r.Body). It returns the
// principal that signed r. The error is an *Error with AWS's code; it never
// holds a key's secret.
func (d *Directory) Verify(r *http.Request, body []byte, service, region string, now time.Time) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, &Error{Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"}
	}
	a, err := ParseAuthorization(h)
	if err != nil {
		return Principal{}, err
	}
	p, ok := d.Lookup(a.AccessKeyID)
	if !ok || p.SecretAccessKey == "" {
		return Principal{}, &Error{Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	}
	if a.Service != service || a.Region != region {
		return Principal{}, &Error{Code: "InvalidSignatureException", Message: fmt.Sprintf("Credential should be scoped to region %s and service %s, not %s and %s.", region, service, a.Region, a.Service)}
	}
	signedAt, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || a.Date != signedAt.Format("20060102") {
		return Principal{}, &Error{Code: "IncompleteSignatureException", Message: "X-Amz-Date must be a valid date (yyyyMMddTHHmmssZ) on the credential scope's day."}
	}
	if d := now.Sub(signedAt); d > MaxSkew || d < -MaxSkew {
		return Principal{}, &Error{Code: "InvalidSignatureException", Message: fmt.Sprintf("Signature expired: %s is not within %s of %s.", signedAt.Format("20060102T150405Z"), MaxSkew, now.UTC().Format("20060102T150405Z"))}
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	// The body must be signed: Lambda (the service whose function URLs
	// this verifies) does not accept unsigned payloads, and without the
	// body in the signature anyone who saw one request could replay its
	// headers with another body.
	if r.Header.Get("X-Amz-Content-Sha256") == "UNSIGNED-PAYLOAD" {
		return Principal{}, &Error{Code: "InvalidSignatureException", Message: "Unsigned payloads are not supported: sign the request body."}
	}
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != "" && got != payloadHash {
		return Principal{}, &Error{Code: "InvalidSignatureException", Message: "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}

	// The same request, with only the headers the caller signed, signed
	// again with the key's secret: the signatures match only if the secret,
	// method, path, query, signed headers and body are the same.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	again, err := http.NewRequestWithContext(context.Background(), r.Method, u.String(), io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return Principal{}, &Error{Code: "InvalidSignatureException", Message: "The request URL cannot be signed."}
	}
	again.Host = r.Host
	for _, name := range a.SignedHeaders {
		switch strings.ToLower(name) {
		case "host", "x-amz-date":
			// The signer writes these itself.
		case "content-length":
			again.ContentLength = int64(len(body))
		default:
			again.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
		}
	}
	if !contains(a.SignedHeaders, "content-length") {
		again.ContentLength = 0
	}
	hashForSigner := payloadHash
	creds := aws.Credentials{AccessKeyID: p.AccessKeyID, SecretAccessKey: p.SecretAccessKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hashForSigner, service, region, signedAt); err != nil {
		return Principal{}, &Error{Code: "InvalidSignatureException", Message: "The request cannot be signed again to check it."}
	}
	want, err := ParseAuthorization(again.Header.Get("Authorization"))
	if err != nil || strings.Join(want.SignedHeaders, ";") != strings.Join(a.SignedHeaders, ";") ||
		subtle.ConstantTimeCompare([]byte(want.Signature), []byte(a.Signature)) != 1 {
		return Principal{}, &Error{Code: "InvalidSignatureException", Message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
