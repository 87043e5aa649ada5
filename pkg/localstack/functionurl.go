package localstack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/registry"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// A local Lambda function URL with AWS_IAM auth, for each function the
// registry reaches through one (registry.Function.URL): its own loopback
// listener (on AWS each URL is its own host, https://<url-id>.lambda-url.
// <region>.on.aws/, so the whole path is the function's), where every
// request must carry a SigV4 signature for the service "lambda" in Region
// made with a key of the stack's principal directory (Config.Principals).
// A verified request becomes the function URL event (payload format 2.0)
// with requestContext.authorizer.iam naming the principal, runs through the
// function's invocation queue, and the function's answer becomes the HTTP
// response, as Lambda does. An unsigned or wrongly signed request gets
// 403 {"Message":"Forbidden"}, as from AWS, and never reaches the function;
// why it was refused goes to Config.Log.

// FunctionURLConfigPath is the Lambda API's GetFunctionUrlConfig route,
// which the stack answers for its functions with a URL.
const functionURLConfigPath = "GET /2021-10-31/functions/{function}/url"

// functionURL is one served function URL.
type functionURL struct {
	name    string // directory name
	arn     string
	url     string // http://127.0.0.1:PORT/
	id      string // the URL id: the host's first label on AWS
	created time.Time
	srv     *http.Server
}

// errNoInstance is an invocation that found no idle instance before the
// caller gave up.
var errNoInstance = errors.New("no instance of the function became idle")

// startFunctionURL serves the function URL of a started function.
func (s *Stack) startFunctionURL(name string, dir *localauth.Directory, log io.Writer) error {
	ln, err := smlocal.ListenLoopback("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("serve the function URL of %s: %w", name, err)
	}
	sum := sha256.Sum256([]byte(FunctionARN(name)))
	u := &functionURL{
		name: name, arn: FunctionARN(name), url: "http://" + ln.Addr().String() + "/",
		id: strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))[:32], created: time.Now().UTC(),
	}
	if log == nil {
		log = io.Discard
	}
	// Each request takes an idle instance of the function, as the Secrets
	// Manager endpoint's invocations do.
	invoke := func(ctx context.Context, payload []byte) ([]byte, error) {
		fn, release, err := s.acquire(ctx, u.arn)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errNoInstance, err)
		}
		defer release()
		return fn.Invoke(ctx, payload)
	}
	u.srv = &http.Server{Handler: s.urlHandler(u, invoke, dir, log), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.srv.Serve(ln) }()
	s.mu.Lock()
	if s.urls == nil {
		s.urls = map[string]*functionURL{}
	}
	s.urls[u.arn] = u
	s.mu.Unlock()
	return nil
}

// FunctionURL returns the local function URL of a function the stack runs
// (by directory name), such as http://127.0.0.1:41234/.
func (s *Stack) FunctionURL(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.urls[FunctionARN(name)]
	if !ok {
		return "", false
	}
	return u.url, true
}

// closeFunctionURLs stops every function URL's listener.
func (s *Stack) closeFunctionURLs() {
	s.mu.Lock()
	urls := s.urls
	s.urls = nil
	s.mu.Unlock()
	for _, u := range urls {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := u.srv.Shutdown(ctx); err != nil {
			_ = u.srv.Close()
		}
		cancel()
	}
}

// forbidden answers as a function URL with AWS_IAM auth answers a request
// IAM refuses.
func forbidden(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", "AccessDeniedException")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, `{"Message":"Forbidden"}`)
}

// maxURLPayload is Lambda's limit on a synchronous request payload.
const maxURLPayload = 6 << 20

// urlHandler serves one function URL: verify, build the event, run it
// through the function's queue with invoke, answer.
func (s *Stack) urlHandler(u *functionURL, invoke func(context.Context, []byte) ([]byte, error), dir *localauth.Directory, log io.Writer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.serveFunctionURL(w, r, u, invoke, dir, log) }
}

func (s *Stack) serveFunctionURL(w http.ResponseWriter, r *http.Request, u *functionURL, invoke func(context.Context, []byte) ([]byte, error), dir *localauth.Directory, log io.Writer) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxURLPayload+1))
	if err != nil {
		http.Error(w, `{"Message":"Bad Request"}`, http.StatusBadRequest)
		return
	}
	if len(body) > maxURLPayload {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, `{"Message":"Request must be smaller than 6291456 bytes for the InvokeFunction operation"}`)
		return
	}
	now := time.Now()
	p, err := dir.Verify(r, body, "lambda", Region, now)
	if err != nil {
		code := "AccessDeniedException"
		var ae *localauth.Error
		if errors.As(err, &ae) {
			code = ae.Code
		}
		line, _ := json.Marshal(map[string]string{"msg": "local function URL refused a request", "function": u.arn, "method": r.Method, "path": r.URL.Path, "code": code, "reason": err.Error()})
		_, _ = fmt.Fprintf(log, "%s\n", line)
		forbidden(w)
		return
	}
	ev := urlEvent(r, body, u, p, now)
	payload, err := json.Marshal(ev)
	if err != nil {
		http.Error(w, `{"Message":"Internal Server Error"}`, http.StatusInternalServerError)
		return
	}
	out, err := invoke(r.Context(), payload)
	if errors.Is(err, errNoInstance) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"Message":"Service Unavailable"}`)
		return
	}
	if err != nil {
		// A function error or a crash: Lambda answers 502 and the caller
		// learns nothing more (the function's log has it).
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, `{"Message":"Internal Server Error"}`)
		return
	}
	writeURLResponse(w, out)
}

// urlEvent is the function URL event (payload format 2.0) of a verified request.
func urlEvent(r *http.Request, body []byte, u *functionURL, p localauth.Principal, now time.Time) events.LambdaFunctionURLRequest {
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	var cookies []string
	if c := r.Header.Get("Cookie"); c != "" {
		for _, part := range strings.Split(c, ";") {
			if part = strings.TrimSpace(part); part != "" {
				cookies = append(cookies, part)
			}
		}
		delete(headers, "cookie")
	}
	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = map[string]string{}
		for k, vs := range q {
			query[k] = strings.Join(vs, ",")
		}
	}
	sourceIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev := events.LambdaFunctionURLRequest{
		Version: "2.0", RawPath: r.URL.EscapedPath(), RawQueryString: r.URL.RawQuery,
		Cookies: cookies, Headers: headers, QueryStringParameters: query,
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID: AccountID, RequestID: newRequestID(), APIID: u.id,
			DomainName: r.Host, DomainPrefix: u.id,
			Time: now.UTC().Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: now.UnixMilli(),
			Authorizer: &events.LambdaFunctionURLRequestContextAuthorizerDescription{
				IAM: &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{
					AccessKey: p.AccessKeyID, AccountID: accountOf(p.ARN), CallerID: callerID(p.ARN), UserARN: p.ARN, UserID: callerID(p.ARN),
				},
			},
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: sourceIP, UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if textual(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev
}

// textual reports whether Lambda hands a body of this content type to the
// function as text (else base64).
func textual(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || mt == "application/xml" ||
		mt == "application/x-www-form-urlencoded" || mt == "application/javascript" || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}

// writeURLResponse turns the function's answer into the HTTP response as
// Lambda does: a JSON object with statusCode is a response (headers,
// cookies, body, isBase64Encoded); anything else is the body of a 200 with
// Content-Type application/json.
func writeURLResponse(w http.ResponseWriter, out []byte) {
	var probe map[string]json.RawMessage
	var resp events.LambdaFunctionURLResponse
	if json.Unmarshal(out, &probe) != nil || probe["statusCode"] == nil || json.Unmarshal(out, &resp) != nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		return
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, `{"Message":"Internal Server Error"}`)
			return
		}
		body = b
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	status := resp.StatusCode
	if status < 100 || status > 599 {
		status = http.StatusBadGateway
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// accountOf returns the account of an IAM or STS ARN.
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

// callerID is the unique id IAM would report for a principal: AIDA… for
// a user, AROA…:SESSION for an assumed-role session, AROA… for a role. The
// local stack has no IAM, so it is derived from the ARN (stable across runs).
func callerID(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	id := strings.ToUpper(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:17]
	resource := arn[strings.LastIndex(arn, ":")+1:]
	switch {
	case strings.HasPrefix(resource, "assumed-role/"):
		parts := strings.Split(resource, "/")
		return "AROA" + id + ":" + parts[len(parts)-1]
	case strings.HasPrefix(resource, "role/"):
		return "AROA" + id
	}
	return "AIDA" + id
}

// newRequestID returns a random UUID, as Lambda's request ids are.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// functionURLConfig answers GetFunctionUrlConfig for the stack's functions
// with a URL, so a client finds a local function's URL as on AWS.
func (s *Stack) functionURLConfig(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("function")
	arn, _, ok := s.lookup(id)
	if !ok {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Function not found: %s; this stack runs %s", id, strings.Join(s.functionARNs(), ", ")))
		return
	}
	s.mu.Lock()
	u, ok := s.urls[arn]
	s.mu.Unlock()
	if !ok {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "The resource you requested does not exist.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"FunctionUrl": u.url, "FunctionArn": u.arn, "AuthType": "AWS_IAM", "InvokeMode": "BUFFERED",
		"CreationTime": u.created.Format("2006-01-02T15:04:05.000Z0700"), "LastModifiedTime": u.created.Format("2006-01-02T15:04:05.000Z0700"),
	})
}

// hasURL reports whether the registry reaches the function through a URL.
func hasURL(name string) bool {
	f, ok := registry.LookupFunction(name)
	return ok && f.URL
}
