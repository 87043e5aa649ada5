package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/jsontext"
	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// SecretsManager is the part of the Secrets Manager API the engine uses.
// *secretsmanager.Client satisfies it.
type SecretsManager interface {
	DescribeSecret(context.Context, *secretsmanager.DescribeSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(context.Context, *secretsmanager.PutSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(context.Context, *secretsmanager.UpdateSecretVersionStageInput, ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	ListSecretVersionIds(context.Context, *secretsmanager.ListSecretVersionIdsInput, ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error)
}

// Options configure a Handler.
type Options struct {
	// Client reaches Secrets Manager. Required.
	Client SecretsManager
	// Passwords is the password policy; nil means password.DefaultPolicy.
	Passwords *password.Policy
	// Logger receives one JSON line per step; it is wrapped with the
	// scrubbing handler. Nil means JSON to standard output.
	Logger *slog.Logger
	// FunctionName names the function in metrics; default
	// AWS_LAMBDA_FUNCTION_NAME.
	FunctionName string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler is a rotation function: it implements the rotation protocol for
// one credential type. Its Handle method is the Lambda handler.
type Handler struct {
	cred      Credential
	public    []string // the type's public fields, for the scrubber
	sm        SecretsManager
	passwords *password.Policy
	log       *slog.Logger
	function  string
	now       func() time.Time
	// noBatch is set once BatchGetSecretValue was refused (the function's
	// role lacks secretsmanager:BatchGetSecretValue): this instance then
	// reads one secret per call without asking again.
	noBatch atomic.Bool
}

// NewHandler returns the rotation handler for a credential type.
func NewHandler(cred Credential, opts Options) (*Handler, error) {
	if cred == nil {
		return nil, errors.New("rotation: no credential type")
	}
	if opts.Client == nil {
		return nil, errors.New("rotation: no Secrets Manager client")
	}
	h := &Handler{cred: cred, public: PublicFieldsOf(cred), sm: opts.Client, passwords: opts.Passwords, function: opts.FunctionName, now: opts.Now}
	if h.passwords == nil {
		h.passwords = password.DefaultPolicy()
	}
	if err := h.passwords.Check(); err != nil {
		return nil, err
	}
	var next slog.Handler
	if opts.Logger != nil {
		next = opts.Logger.Handler()
	} else {
		next = slog.NewJSONHandler(os.Stdout, nil)
	}
	h.log = slog.New(NewScrubHandler(next))
	if h.function == "" {
		h.function = os.Getenv("AWS_LAMBDA_FUNCTION_NAME")
	}
	if h.function == "" {
		h.function = "local"
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// invocation is the state of one Handle call.
type invocation struct {
	ev       Event
	arn      string
	scrub    *scrubber
	note     string // what a successful step did when it did nothing, for the log
	stages   map[string][]string
	versions []smtypes.SecretVersionsListEntry // every version, newest first, once listed
	stack    string                            // of a recovered panic, for the log
	restore  string                            // outcome of restoring AWSCURRENT after a failure, for the log
	reap     string                            // what the reap after finishSecret did, for the log
	report   *recovery.Report                  // the answer of probeSecret and recoverSecret
	current  Version                           // AWSCURRENT, read and validated by the probes
	// decoded keeps what the credential type decoded from each version
	// read in this step (Version.Decoded): a version's value never changes,
	// so a second read of it (after a restore, say) shares the first's.
	decoded *stepDecodes
	// prefetched holds the AWSCURRENT versions of other secrets that
	// setSecret read with the secret's own (see SetReader), by the ID the
	// type named them with.
	prefetched map[string]Version
}

// stepDecodes maps a version (ID and value) to its decode cache.
type stepDecodes struct {
	mu sync.Mutex
	m  map[[2]string]*decodeCache
}

// decodeCache returns the step's cache of decoded forms of v, keyed by the
// version and its value.
func (inv *invocation) decodeCache(v Version) *decodeCache {
	d := inv.decoded
	if d == nil {
		return &decodeCache{value: v.Value}
	}
	k := [2]string{v.ID, v.Value}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.m[k]; ok {
		return c
	}
	if d.m == nil {
		d.m = make(map[[2]string]*decodeCache)
	}
	c := &decodeCache{value: v.Value}
	d.m[k] = c
	return c
}

// Handle runs one step of a rotation. A non-nil error fails the step, and
// Secrets Manager retries the whole rotation.
func (h *Handler) Handle(ctx context.Context, ev Event) error {
	_, err := h.Invoke(ctx, ev)
	return err
}

// Invoke is the Lambda handler: it runs one step, as Handle does, and
// returns the Report of the operator steps probeSecret and recoverSecret
// (nil for the others, which Lambda answers with null).
func (h *Handler) Invoke(ctx context.Context, ev Event) (*recovery.Report, error) {
	start := h.now()
	inv := &invocation{ev: ev, arn: ev.SecretID, scrub: newScrubber(h.public...), decoded: &stepDecodes{}}
	ctx = withScrubber(ctx, inv.scrub)
	err := h.handle(ctx, inv)
	var serr *StepError
	if err != nil {
		serr = &StepError{Step: ev.Step, SecretARN: inv.arn, Token: ev.ClientRequestToken, msg: inv.scrub.scrub(err.Error()), cause: err}
	}
	h.logStep(ctx, inv, start, serr)
	if serr != nil {
		return nil, serr
	}
	return inv.report, nil
}

func (h *Handler) handle(ctx context.Context, inv *invocation) (err error) {
	ev := inv.ev
	defer func() {
		if r := recover(); r != nil {
			inv.stack = string(debug.Stack())
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	switch {
	case ev.SecretID == "":
		return fmt.Errorf("%w: SecretId is empty", ErrInvalidEvent)
	case ev.ClientRequestToken == "":
		return fmt.Errorf("%w: ClientRequestToken is empty", ErrInvalidEvent)
	}
	step, ok := h.steps()[ev.Step]
	operator := ev.Step == StepRevoke || ev.Step == StepProbe || ev.Step == StepRecover || ev.Step == StepReap
	if !ok && !operator {
		return fmt.Errorf("%w %q: expected createSecret, setSecret, testSecret or finishSecret (or an operator step: revokeSecret, probeSecret, recoverSecret, reapSecret)", ErrUnknownStep, ev.Step)
	}
	desc, err := h.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(ev.SecretID)})
	if err != nil {
		return fmt.Errorf("describe secret: %w", err)
	}
	if desc.ARN != nil {
		inv.arn = *desc.ARN
	}
	inv.stages = desc.VersionIdsToStages
	switch ev.Step {
	case StepRevoke:
		return h.revokeSecret(ctx, inv)
	case StepProbe:
		return h.probeSecret(ctx, inv)
	case StepRecover:
		return h.recoverSecret(ctx, inv)
	case StepReap:
		return h.reapSecret(ctx, inv)
	}
	if desc.RotationEnabled != nil && !*desc.RotationEnabled {
		return fmt.Errorf("%w for this secret; turn it on with RotateSecret before rotating", ErrRotationDisabled)
	}
	stages, ok := desc.VersionIdsToStages[ev.ClientRequestToken]
	if !ok {
		if _, restorer := h.cred.(Restorer); restorer && (ev.Step == StepTest || ev.Step == StepFinish) && h.isDeprecatedVersion(ctx, inv, ev.ClientRequestToken) {
			// AWSPENDING was taken off this version after setSecret may
			// have set its credential: put AWSCURRENT's back.
			return h.restoreCurrent(ctx, inv, fmt.Errorf("%w: the version has no labels left (AWSPENDING was removed, so the rotation was abandoned)", ErrNotPending))
		}
		return fmt.Errorf("%w: it has no staging labels; start the rotation with RotateSecret so that the token names the AWSPENDING version", ErrUnknownToken)
	}
	if slices.Contains(stages, LabelCurrent) {
		inv.note = "version is already AWSCURRENT"
		if ev.Step == StepFinish {
			// A retry after a finishSecret whose move landed late or whose
			// reply was lost: prove AWSCURRENT logs in (a Restorer may have
			// put the old credential back meanwhile).
			return h.confirmCurrent(ctx, inv)
		}
		return nil
	}
	if !slices.Contains(stages, LabelPending) {
		err := fmt.Errorf("%w (it has %v); the rotation was finished or abandoned: start a new one", ErrNotPending, stages)
		if ev.Step == StepTest || ev.Step == StepFinish {
			// Abandoned after setSecret may have changed the credential.
			return h.restoreCurrent(ctx, inv, err)
		}
		return err
	}
	return step(ctx, inv)
}

func (h *Handler) steps() map[string]func(context.Context, *invocation) error {
	return map[string]func(context.Context, *invocation) error{
		StepCreate: h.createSecret,
		StepSet:    h.setSecret,
		StepTest:   h.testSecret,
		StepFinish: h.finishSecret,
	}
}

// getVersion reads one version by label, by token, or by both (each when
// set). It registers the value with the scrubber before anything else sees it.
func (h *Handler) getVersion(ctx context.Context, inv *invocation, id, token, label string) (Version, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}
	what := label + " version"
	if label != "" {
		in.VersionStage = aws.String(label)
	}
	if token != "" {
		in.VersionId = aws.String(token)
		if label == "" {
			what = "version " + token
		}
	}
	out, err := h.sm.GetSecretValue(ctx, in)
	if err != nil {
		return Version{}, fmt.Errorf("read %s: %w", what, err)
	}
	v := Version{ID: aws.ToString(out.VersionId), Value: aws.ToString(out.SecretString)}
	v.decoded = inv.decodeCache(v)
	inv.scrub.addSecret(v.Value)
	if out.SecretString == nil {
		return Version{}, fmt.Errorf("%w: the %s (%s) holds a binary secret; Rotary rotates JSON secrets in SecretString", ErrInvalidSecret, what, v.ID)
	}
	return v, nil
}

func (h *Handler) validate(ctx context.Context, label string, v Version) error {
	if err := h.cred.Validate(ctx, v); err != nil {
		return fmt.Errorf("%w: %s version %s: %w", ErrInvalidSecret, label, v.ID, err)
	}
	return nil
}

func (h *Handler) createSecret(ctx context.Context, inv *invocation) error {
	cur, err := h.getVersion(ctx, inv, inv.arn, "", LabelCurrent)
	if err != nil {
		return err
	}
	if err := h.validate(ctx, LabelCurrent, cur); err != nil {
		return err
	}
	resp, err := h.cred.Generate(ctx, GenerateRequest{SecretARN: inv.arn, Current: cur, Passwords: h.passwords})
	if err != nil {
		return fmt.Errorf("generate pending value: %w", err)
	}
	value, err := mergeFields(cur, resp.Changes)
	if err != nil {
		return err
	}
	inv.scrub.addSecret(value)
	_, err = h.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(inv.arn),
		ClientRequestToken: aws.String(inv.ev.ClientRequestToken),
		SecretString:       aws.String(value),
		VersionStages:      []string{LabelPending},
		RotationToken:      optional(inv.ev.RotationToken),
	})
	var exists *smtypes.ResourceExistsException
	if errors.As(err, &exists) {
		// The version already holds a value: an earlier attempt created it.
		// Keeping that value is what makes createSecret idempotent.
		inv.note = "pending version already has a value"
		return nil
	}
	if err != nil {
		return fmt.Errorf("store pending version: %w", err)
	}
	return nil
}

// mergeFields copies the current value and overwrites the changed fields,
// so every field the credential type does not rotate survives unchanged.
func mergeFields(cur Version, changes map[string]any) (string, error) {
	fields, err := cur.Fields()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	if len(changes) == 0 {
		return "", errors.New("generate pending value: the credential type changed nothing")
	}
	for k, v := range changes {
		b, err := marshalNoEscape(v)
		if err != nil {
			return "", fmt.Errorf("encode field %q: %s", k, jsontext.ErrorText(err))
		}
		fields[k] = b
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := marshalNoEscape(k)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(fields[k])
	}
	buf.WriteByte('}')
	return buf.String(), nil
}

func marshalNoEscape(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func (h *Handler) setSecret(ctx context.Context, inv *invocation) error {
	var cur, pend Version
	var err error
	if sr, ok := h.cred.(SetReader); ok {
		// The pending version names the other secrets Set reads: read it
		// first, then AWSCURRENT and those together.
		if pend, err = h.getVersion(ctx, inv, inv.arn, inv.ev.ClientRequestToken, LabelPending); err != nil {
			return err
		}
		if err := h.validate(ctx, LabelPending, pend); err != nil {
			return err
		}
		if cur, err = h.currentWith(ctx, inv, sr.SetReads(pend)); err != nil {
			return err
		}
	} else {
		if cur, err = h.getVersion(ctx, inv, inv.arn, "", LabelCurrent); err != nil {
			return err
		}
		if pend, err = h.getVersion(ctx, inv, inv.arn, inv.ev.ClientRequestToken, LabelPending); err != nil {
			return err
		}
		if err := h.validate(ctx, LabelPending, pend); err != nil {
			return err
		}
	}
	// A Restorer's Set replaces AWSCURRENT's credential: when it fails
	// after it may have changed it (a reply lost after the server took the
	// change, a step after the change that failed), the engine puts
	// AWSCURRENT's back, so keep the restore's budget back from the step.
	stepCtx, cancel := h.stepContext(ctx)
	defer cancel()
	err = h.cred.Set(stepCtx, SetRequest{SecretARN: inv.arn, Current: cur, Pending: pend, Previous: h.previous(inv), Secrets: h.store(inv)})
	if err == nil {
		return nil
	}
	err = fmt.Errorf("set pending credential: %w", err)
	if errors.Is(err, ErrUnchanged) {
		return err
	}
	return h.restoreCurrent(ctx, inv, err)
}

// testSecret proves the pending credential. When that fails, a Restorer
// makes AWSCURRENT's credential valid downstream again (see restoreCurrent).
func (h *Handler) testSecret(ctx context.Context, inv *invocation) error {
	stepCtx, cancel := h.stepContext(ctx)
	defer cancel()
	if err := h.test(stepCtx, inv); err != nil {
		return h.restoreCurrent(ctx, inv, err)
	}
	return nil
}

func (h *Handler) test(ctx context.Context, inv *invocation) error {
	pend, err := h.getVersion(ctx, inv, inv.arn, inv.ev.ClientRequestToken, LabelPending)
	if err != nil {
		return err
	}
	if err := h.validate(ctx, LabelPending, pend); err != nil {
		return err
	}
	if err := h.cred.Test(ctx, TestRequest{SecretARN: inv.arn, Pending: pend, Secrets: h.store(inv)}); err != nil {
		return fmt.Errorf("test pending credential: %w", err)
	}
	return nil
}

// finishSecret moves AWSCURRENT to the pending version. When the call
// fails, a fresh DescribeSecret tells whether it took effect anyway (a
// reply lost after the label moved): then the step has succeeded. When
// AWSCURRENT is still on the old version, a Restorer makes its credential
// valid downstream again.
func (h *Handler) finishSecret(ctx context.Context, inv *invocation) error {
	stepCtx, cancel := h.stepContext(ctx)
	defer cancel()
	current, _ := holder(inv.stages, LabelCurrent)
	token := inv.ev.ClientRequestToken
	err := h.moveCurrent(stepCtx, inv, token, current)
	if err == nil {
		h.reapAfterFinish(ctx, inv, token)
		return nil
	}
	rctx, rcancel := restoreContext(ctx)
	defer rcancel()
	desc, derr := h.sm.DescribeSecret(rctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(inv.arn)})
	if derr != nil {
		if _, ok := h.cred.(Restorer); ok {
			inv.restore = "skipped"
			return fmt.Errorf("%w; AWSCURRENT's credential was not restored downstream, because reading where AWSCURRENT is failed too (%w): until the rotation is retried or 'rotary unstick' completes it, only AWSPENDING's credential may log in", err, derr)
		}
		return err
	}
	if now, _ := holder(desc.VersionIdsToStages, LabelCurrent); now == token {
		inv.note = "AWSCURRENT moved to the version although the call reported a failure"
		h.reapAfterFinish(ctx, inv, token)
		return nil
	}
	err = h.restoreCurrent(ctx, inv, err)
	if _, ok := h.cred.(Restorer); !ok {
		return err
	}
	// A move the call gave up on may still land, after the restore put the
	// old credential back: look once more, and if it did, set this
	// version's credential again.
	desc, derr = h.sm.DescribeSecret(rctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(inv.arn)})
	if derr == nil {
		if now, _ := holder(desc.VersionIdsToStages, LabelCurrent); now == token {
			inv.stages = desc.VersionIdsToStages
			if cerr := h.confirmCurrent(ctx, inv); cerr != nil {
				return fmt.Errorf("%w; then AWSCURRENT moved to this version after all, and %w", err, cerr)
			}
			inv.note = "AWSCURRENT moved to the version after the call had failed; its credential was set again"
			return nil
		}
	}
	return err
}

// previous returns a reader of AWSPREVIOUS that reads it only when called.
func (h *Handler) previous(inv *invocation) func(context.Context) (Version, bool, error) {
	return func(ctx context.Context) (Version, bool, error) {
		if _, ok := holder(inv.stages, LabelPrevious); !ok {
			return Version{}, false, nil
		}
		v, err := h.getVersion(ctx, inv, inv.arn, "", LabelPrevious)
		if err != nil {
			return Version{}, false, err
		}
		return v, true, nil
	}
}

// holder returns the version that carries label (a label is on at most one
// version), and whether any does.
func holder(stages map[string][]string, label string) (string, bool) {
	for id, s := range stages {
		if slices.Contains(s, label) {
			return id, true
		}
	}
	return "", false
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// store gives credential types read access to other secrets; every value
// read through it is registered with the invocation's scrubber.
func (h *Handler) store(inv *invocation) SecretStore { return secretStore{h: h, inv: inv} }

type secretStore struct {
	h   *Handler
	inv *invocation
}

func (s secretStore) Current(ctx context.Context, id string) (Version, error) {
	if v, ok := s.inv.prefetched[id]; ok {
		return v, nil
	}
	return s.h.getVersion(ctx, s.inv, id, "", LabelCurrent)
}

func (s secretStore) Tags(ctx context.Context, id string) (map[string]string, error) {
	out, err := s.h.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		return nil, fmt.Errorf("describe secret %s: %w", id, err)
	}
	tags := make(map[string]string, len(out.Tags))
	for _, t := range out.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}
