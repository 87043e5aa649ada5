package localstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
	"github.com/rotary-secrets/rotary/pkg/snslocal"
)

// RotationsPath is the stack's rotations feed: GET RotationsPath?secretId=ID
// answers with the secret's rotations (RotationsFeed) as JSON, so a client
// can show the exact steps of a running rotation. Real Secrets Manager has
// no such route; a 404 there tells a client it is not talking to the stack.
const RotationsPath = "/rotary/v1/rotations"

// RotationsFeed is the JSON document served at RotationsPath.
type RotationsFeed struct {
	Rotations []FeedRotation `json:"rotations"`
}

// FeedRotation is one rotation in the feed, oldest first. Follow one by its
// token: two may be running for a while, an older one whose AWSPENDING was
// removed by hand ending (as failed, abandoned) once its step returns, and
// the newest, which is the one smlocal.Server.WaitRotation waits for.
type FeedRotation struct {
	Token    string        `json:"token"`
	State    string        `json:"state"` // running, succeeded or failed
	Started  time.Time     `json:"started"`
	Ended    time.Time     `json:"ended,omitzero"`
	Error    string        `json:"error,omitempty"`
	Attempts []FeedAttempt `json:"attempts"`
}

// FeedAttempt is one attempt of a rotation.
type FeedAttempt struct {
	Number int        `json:"number"`
	Steps  []FeedStep `json:"steps"`
	Error  string     `json:"error,omitempty"`
}

// FeedStep is one step of an attempt; Done is false while it runs.
type FeedStep struct {
	Step       string `json:"step"`
	Done       bool   `json:"done"`
	DurationMS int64  `json:"durationMs"`
	Error      string `json:"error,omitempty"`
}

// listen serves the stack's endpoint on addr (loopback only).
func (s *Stack) listen(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := smlocal.ListenLoopback(addr)
	if err != nil {
		return fmt.Errorf("start the local stack: %w", err)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /2015-03-31/functions/{function}/invocations", s.invoke)
	s.mux.HandleFunc("GET "+RotationsPath, s.rotations)
	s.mux.HandleFunc(functionURLConfigPath, s.functionURLConfig)
	s.mux.HandleFunc("GET /2015-03-31/functions/{function}/configuration", s.functionConfiguration)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h, ok := s.services[signingName(r)]; ok {
			h.ServeHTTP(w, r)
			return
		}
		if snslocal.IsRequest(r) {
			s.SNS.ServeHTTP(w, r)
			return
		}
		s.SM.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.httpSrv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	s.Endpoint = "http://" + ln.Addr().String()
	return nil
}

// signingName is the service a SigV4-signed request was signed for: the
// fourth part of the Authorization header's credential scope
// (Credential=AKID/date/region/service/aws4_request), or "".
func signingName(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}

// servicesEnv points the functions' SDK clients of Config.Services at the
// stack's endpoint.
func (s *Stack) servicesEnv() []string {
	names := make([]string, 0, len(s.services))
	for name := range s.services {
		names = append(names, name)
	}
	sort.Strings(names)
	env := make([]string, 0, len(names))
	for _, name := range names {
		env = append(env, "AWS_ENDPOINT_URL_"+strings.ToUpper(name)+"="+s.Endpoint)
	}
	return env
}

// ServeHTTP serves the stack's endpoint: the Secrets Manager API (POST /
// with X-Amz-Target), CloudTrail's LookupEvents over the local audit trail
// (POST / with X-Amz-Target, pkg/smlocal), the APIs of Config.Services (by the service their
// requests are signed for), Lambda's GetFunctionConfiguration, the SNS API (POST / form-encoded, pkg/snslocal), the Lambda Invoke API (POST
// /2015-03-31/functions/{name or ARN}/invocations, RequestResponse only) for
// the stack's functions, and the rotations feed at RotationsPath.
func (s *Stack) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// LambdaClient returns a real SDK Lambda client for the stack's functions.
func (s *Stack) LambdaClient() *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(smlocal.LocalAccessKeyID, smlocal.LocalSecretAccessKey, ""),
	})
}

// lookup finds a running function by ARN (optionally qualified with
// :$LATEST), by its name (rotary-<dir>) or by its directory name.
func (s *Stack) lookup(id string) (string, *lambdaemu.Function, bool) {
	id = strings.TrimSuffix(id, ":$LATEST")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, arn := range []string{id, "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + id, FunctionARN(id)} {
		if fn, ok := s.functions[arn]; ok {
			return arn, fn, true
		}
	}
	return "", nil, false
}

// lambdaError writes an error the way the Lambda API does, so that the SDK
// maps it to its typed error.
func lambdaError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": msg})
}

// invoke runs one synchronous invocation on an idle instance of the
// function, so that it never meets a rotation step in the same emulator.
func (s *Stack) invoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("function")
	if q := r.URL.Query().Get("Qualifier"); q != "" && q != "$LATEST" {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Function not found: %s:%s; the local stack serves only $LATEST", id, q))
		return
	}
	arn, _, ok := s.lookup(id)
	if !ok {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Function not found: %s; this stack runs %s", id, strings.Join(s.functionARNs(), ", ")))
		return
	}
	switch t := r.Header.Get("X-Amz-Invocation-Type"); t {
	case "", "RequestResponse":
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("invocation type %q is not supported by the local stack; use RequestResponse", t))
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, 6<<20))
	if err != nil {
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "read the payload: "+err.Error())
		return
	}
	fn, release, err := s.acquire(r.Context(), arn)
	if err != nil {
		lambdaError(w, http.StatusServiceUnavailable, "TooManyRequestsException", err.Error())
		return
	}
	out, err := fn.Invoke(r.Context(), payload)
	release()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	var fe *lambdaemu.FunctionError
	switch {
	case errors.As(err, &fe):
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		body, _ := json.Marshal(map[string]any{"errorType": fe.Type, "errorMessage": fe.Message})
		_, _ = w.Write(body)
	case err != nil:
		lambdaError(w, http.StatusBadGateway, "ServiceException", err.Error())
	default:
		_, _ = w.Write(out)
	}
}

func (s *Stack) functionARNs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	arns := make([]string, 0, len(s.functions))
	for arn := range s.functions {
		arns = append(arns, arn)
	}
	sort.Strings(arns)
	return arns
}

func (s *Stack) rotations(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("secretId")
	if id == "" {
		http.Error(w, "missing query parameter secretId", http.StatusBadRequest)
		return
	}
	feed := RotationsFeed{Rotations: []FeedRotation{}}
	for _, rot := range s.SM.Rotations(id) {
		fr := FeedRotation{Token: rot.Token, State: string(rot.State), Started: rot.Started, Ended: rot.Ended, Error: rot.Err, Attempts: []FeedAttempt{}}
		for _, a := range rot.Attempts {
			fa := FeedAttempt{Number: a.Number, Error: a.Err, Steps: []FeedStep{}}
			for _, st := range a.Steps {
				fa.Steps = append(fa.Steps, FeedStep{Step: st.Step, Done: st.Done, DurationMS: st.Duration.Milliseconds(), Error: st.Err})
			}
			fr.Attempts = append(fr.Attempts, fa)
		}
		feed.Rotations = append(feed.Rotations, fr)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(feed)
}
