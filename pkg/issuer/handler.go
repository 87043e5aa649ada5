package issuer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/rotary-secrets/rotary/pkg/emf"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// Request is the JSON body a caller POSTs to the function URL.
type Request struct {
	// Role names a configured role.
	Role string `json:"role"`
	// TTL is the credential's lifetime, a Go duration ("15m"); empty means
	// the role's default. Above the role's maximum it is refused.
	TTL string `json:"ttl,omitempty"`
}

// ErrorBody is the JSON body of every refusal the function URL answers.
type ErrorBody struct {
	Message string `json:"message"`
}

// Operator actions, the "rotary" field of an OperatorEvent.
const (
	ActionLeases       = "leases"
	ActionRevokeLeases = "revoke-leases"
	ActionReap         = "reap"
)

// OperatorEvent is a direct invocation of the function (lambda:Invoke, never
// the function URL, whose events carry the request in "body"):
//
//	{"rotary":"leases"}                          every role's leases
//	{"rotary":"leases","role":"app-read"}        one role's
//	{"rotary":"revoke-leases","role":"app-read"} drop them all, ending their sessions
//	{"rotary":"reap"}                            drop the expired ones (a schedule sends this)
//
// lambda:InvokeFunction without the condition lambda:InvokedViaFunctionUrl
// is the permission to send one.
type OperatorEvent struct {
	Rotary string `json:"rotary"`
	Role   string `json:"role,omitempty"`
}

// OperatorResult answers an OperatorEvent.
type OperatorResult struct {
	Action string  `json:"action"`
	Role   string  `json:"role,omitempty"`
	Leases []Lease `json:"leases"`
	// Errors are the roles that failed when every role was asked (the
	// leases of the others are answered).
	Errors []string `json:"errors,omitempty"`
}

// Metric names of the audit lines (namespace Rotary).
const (
	MetricIssued  = "CredentialIssued"
	MetricRefused = "CredentialRefused"
)

// Handle is the function's handler: a function URL request (payload format
// 2.0) or an OperatorEvent, told apart by their shape.
func (is *Issuer) Handle(ctx context.Context, payload json.RawMessage) (any, error) {
	ctx = ensureScrub(ctx)
	var shape struct {
		Rotary         *string          `json:"rotary"`
		RequestContext *json.RawMessage `json:"requestContext"`
	}
	if err := json.Unmarshal(payload, &shape); err != nil {
		return nil, errors.New("the event is not a JSON object: invoke the function through its URL, or with {\"rotary\":\"leases\"}")
	}
	switch {
	case shape.Rotary != nil:
		var ev OperatorEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("operator event: %w", err)
		}
		return is.Operate(ctx, ev)
	case shape.RequestContext != nil:
		var req events.LambdaFunctionURLRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			return nil, fmt.Errorf("function URL event: %w", err)
		}
		return is.ServeURL(ctx, req), nil
	}
	return nil, errors.New("unknown event: this function answers its function URL (AWS_IAM) and the operator events {\"rotary\":\"leases\"|\"revoke-leases\"|\"reap\",\"role\":...}")
}

// Operate runs an operator action.
func (is *Issuer) Operate(ctx context.Context, ev OperatorEvent) (*OperatorResult, error) {
	ctx = ensureScrub(ctx)
	res := &OperatorResult{Action: ev.Rotary, Role: ev.Role}
	var err error
	switch ev.Rotary {
	case ActionLeases:
		res.Leases, err = is.Leases(ctx, ev.Role)
	case ActionRevokeLeases:
		res.Leases, err = is.Revoke(ctx, ev.Role)
	case ActionReap:
		res.Leases, err = is.Reap(ctx, ev.Role)
	default:
		return nil, fmt.Errorf("operator event: \"rotary\" is %q; use %q, %q or %q", ev.Rotary, ActionLeases, ActionRevokeLeases, ActionReap)
	}
	attrs := []slog.Attr{slog.String("action", ev.Rotary), slog.String("role", ev.Role), slog.Int("leases", len(res.Leases))}
	if err != nil && ev.Role == "" && ev.Rotary != ActionRevokeLeases && !errors.Is(err, ErrUnknownRole) {
		// Every role was asked: answer what the others gave, and the failures.
		for _, e := range unjoin(err) {
			res.Errors = append(res.Errors, rotation.ScrubText(ctx, e.Error()))
		}
		is.Log.LogAttrs(ctx, slog.LevelError, "operator action failed for some roles", append(attrs, slog.Any("errors", res.Errors))...)
		if res.Leases == nil {
			res.Leases = []Lease{}
		}
		return res, nil
	}
	if err != nil {
		is.Log.LogAttrs(ctx, slog.LevelError, "operator action failed", append(attrs, slog.String("error", err.Error()))...)
		return nil, errors.New(rotation.ScrubText(ctx, err.Error()))
	}
	is.Log.LogAttrs(ctx, slog.LevelInfo, "operator action", attrs...)
	if res.Leases == nil {
		res.Leases = []Lease{}
	}
	return res, nil
}

// ServeURL answers one function URL request: POST a Request, get a
// Credential (200), or an ErrorBody with 400 (bad JSON, a TTL out of
// bounds), 403 (no IAM caller: the URL is not AWS_IAM), 404 (unknown role),
// 405 (not POST) or 500 (the database or Secrets Manager failed; the log
// says why, the caller gets the request id).
func (is *Issuer) ServeURL(ctx context.Context, req events.LambdaFunctionURLRequest) events.LambdaFunctionURLResponse {
	ctx = ensureScrub(ctx)
	var caller Caller
	if iam := req.RequestContext.Authorizer; iam != nil && iam.IAM != nil {
		caller = Caller{ARN: iam.IAM.UserARN, AccessKey: iam.IAM.AccessKey, AccountID: iam.IAM.AccountID, CallerID: iam.IAM.CallerID}
	}
	requestID := req.RequestContext.RequestID
	if lc, ok := lambdacontext.FromContext(ctx); ok && requestID == "" {
		requestID = lc.AwsRequestID
	}
	refuse := func(status int, role string, err error) events.LambdaFunctionURLResponse {
		msg := rotation.ScrubText(ctx, err.Error())
		is.Log.LogAttrs(ctx, slog.LevelWarn, "credential refused",
			slog.String("caller", caller.ARN), slog.String("accessKey", caller.AccessKey), slog.String("role", role),
			slog.Int("status", status), slog.String("error", msg), slog.String("requestId", requestID),
			slog.Int(MetricRefused, 1), slog.String("FunctionName", is.FunctionName),
			slog.Any("_aws", emf.Directive{Timestamp: is.now().UnixMilli(), CloudWatchMetrics: []emf.MetricSet{{
				Namespace: rotation.MetricNamespace, Dimensions: [][]string{{"FunctionName"}}, Metrics: []emf.Metric{{Name: MetricRefused, Unit: "Count"}},
			}}}))
		if status == http.StatusInternalServerError {
			msg = fmt.Sprintf("the credential could not be issued; the function's log says why (request id %s)", requestID)
		}
		return jsonResponse(status, ErrorBody{Message: msg})
	}
	if caller.ARN == "" {
		return refuse(http.StatusForbidden, "", errors.New("no IAM caller: this function answers only a function URL with AWS_IAM auth"))
	}
	if m := req.RequestContext.HTTP.Method; m != http.MethodPost {
		resp := refuse(http.StatusMethodNotAllowed, "", fmt.Errorf("method %s: POST a JSON body {\"role\":\"NAME\",\"ttl\":\"1h\"}", m))
		resp.Headers["Allow"] = http.MethodPost
		return resp
	}
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(req.Body)
		if err != nil {
			return refuse(http.StatusBadRequest, "", errors.New("the body is marked base64 but is not"))
		}
		body = b
	}
	var r Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return refuse(http.StatusBadRequest, "", fmt.Errorf("the body is not a JSON object {\"role\":\"NAME\",\"ttl\":\"1h\"}: %v", err))
	}
	if strings.TrimSpace(r.Role) == "" {
		return refuse(http.StatusBadRequest, "", errors.New("field \"role\" is missing; name one of the configured roles"))
	}
	cred, err := is.Issue(ctx, caller, r.Role, r.TTL)
	switch {
	case errors.Is(err, ErrUnknownRole):
		return refuse(http.StatusNotFound, r.Role, err)
	case errors.Is(err, ErrBadRequest):
		return refuse(http.StatusBadRequest, r.Role, err)
	case err != nil:
		return refuse(http.StatusInternalServerError, r.Role, err)
	}
	return jsonResponse(http.StatusOK, cred)
}

// audit writes the one line that is left of an issued credential: who asked,
// for which role, which user, until when. Never the password (which the
// scrubber would hide anyway).
func (is *Issuer) audit(ctx context.Context, msg string, caller Caller, role, user string, expiresAt time.Time, ttl time.Duration) {
	now := is.now()
	is.Log.LogAttrs(ctx, slog.LevelInfo, msg,
		slog.String("caller", caller.ARN), slog.String("accessKey", caller.AccessKey), slog.String("callerAccount", caller.AccountID),
		slog.String("callerId", caller.CallerID), slog.String("role", role), slog.String("user", user),
		slog.String("expiresAt", expiresAt.UTC().Format(time.RFC3339)), slog.String("ttl", ttl.String()),
		slog.Int(MetricIssued, 1), slog.String("FunctionName", is.FunctionName),
		slog.Any("_aws", emf.Directive{Timestamp: now.UnixMilli(), CloudWatchMetrics: []emf.MetricSet{{
			Namespace: rotation.MetricNamespace, Dimensions: [][]string{{"FunctionName"}, {"FunctionName", "role"}}, Metrics: []emf.Metric{{Name: MetricIssued, Unit: "Count"}},
		}}}))
}

func jsonResponse(status int, v any) events.LambdaFunctionURLResponse {
	b, _ := json.Marshal(v) // strings, numbers and times
	return events.LambdaFunctionURLResponse{
		StatusCode: status,
		// no-store: a credential must not sit in a proxy's or a browser's cache.
		Headers: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:    string(b),
	}
}

// registerSecret hides v in every log line and error of ctx.
func registerSecret(ctx context.Context, v string) { rotation.AddSecrets(ctx, v) }

// scrubbing marks a context that already has the issuer's scrubber.
type scrubbing struct{}

// ensureScrub gives ctx a scrubber unless Handle already did.
func ensureScrub(ctx context.Context) context.Context {
	if ctx.Value(scrubbing{}) != nil {
		return ctx
	}
	return context.WithValue(rotation.NewScrubContext(ctx), scrubbing{}, true)
}

// unjoin splits an errors.Join.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
