package smlocal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rotary-secrets/rotary/pkg/localauth"
)

// The audit trail: every Secrets Manager call the server answers, and every
// rotation it runs, is recorded as a CloudTrail event in the record shape
// CloudTrail delivers (eventVersion 1.09 for API calls, 1.08 for the
// service's own events), and served by the CloudTrail LookupEvents API
// (trail_lookup.go), so that `rotary audit` reads the local stack exactly as
// it reads AWS.
//
// What is never recorded, as on AWS: a secret value. Request parameters
// keep every field but SecretString, SecretBinary and RotationToken; the
// responses of read-only calls (GetSecretValue, GetRandomPassword, ...) are
// recorded as null, and those of writes keep ARNs, names, version ids and
// labels only (secretFields).

const (
	eventSourceSM      = "secretsmanager.amazonaws.com"
	resourceTypeSecret = "AWS::SecretsManager::Secret"
	// Events older than this are not looked up, as in CloudTrail's event history.
	trailRetention = 90 * 24 * time.Hour
	// UnknownPrincipalName is the IAM user name recorded for a signed
	// request whose access key is not in Options.Principals.
	UnknownPrincipalName = "unknown-local-key"
)

// secretFields are the request and response fields that hold a secret
// value (or, for RotationToken, a credential of the rotation), dropped
// from every recorded event. Keys are lower case: the server decodes
// requests with encoding/json, which matches keys case-insensitively, so
// {"secretstring": ...} is stored as a value and must be dropped too.
var secretFields = map[string]bool{
	"secretstring": true, "secretbinary": true, "randompassword": true, "rotationtoken": true,
	"secretvalues": true, "secretvalueentries": true,
}

// readOnlyOps are the operations CloudTrail records with readOnly true and
// whose responses it records as null.
var readOnlyOps = map[string]bool{
	"GetSecretValue": true, "BatchGetSecretValue": true, "DescribeSecret": true, "ListSecrets": true,
	"ListSecretVersionIds": true, "GetRandomPassword": true, "GetResourcePolicy": true, "ValidateResourcePolicy": true,
}

// ctRecord is one CloudTrail record.
type ctRecord struct {
	EventVersion        string         `json:"eventVersion"`
	UserIdentity        ctUserIdentity `json:"userIdentity"`
	EventTime           string         `json:"eventTime"`
	EventSource         string         `json:"eventSource"`
	EventName           string         `json:"eventName"`
	AWSRegion           string         `json:"awsRegion"`
	SourceIPAddress     string         `json:"sourceIPAddress"`
	UserAgent           string         `json:"userAgent"`
	ErrorCode           string         `json:"errorCode,omitempty"`
	ErrorMessage        string         `json:"errorMessage,omitempty"`
	RequestParameters   any            `json:"requestParameters"`
	ResponseElements    any            `json:"responseElements"`
	AdditionalEventData any            `json:"additionalEventData,omitempty"`
	RequestID           string         `json:"requestID,omitempty"`
	EventID             string         `json:"eventID"`
	ReadOnly            bool           `json:"readOnly"`
	Resources           []ctResource   `json:"resources,omitempty"`
	EventType           string         `json:"eventType"`
	ManagementEvent     bool           `json:"managementEvent"`
	RecipientAccountID  string         `json:"recipientAccountId"`
	EventCategory       string         `json:"eventCategory"`
}

type ctUserIdentity struct {
	Type           string            `json:"type,omitempty"`
	PrincipalID    *string           `json:"principalId,omitempty"`
	ARN            string            `json:"arn,omitempty"`
	AccountID      string            `json:"accountId,omitempty"`
	AccessKeyID    string            `json:"accessKeyId,omitempty"`
	UserName       string            `json:"userName,omitempty"`
	SessionContext *ctSessionContext `json:"sessionContext,omitempty"`
	InvokedBy      string            `json:"invokedBy,omitempty"`
}

type ctSessionContext struct {
	SessionIssuer ctIssuer     `json:"sessionIssuer"`
	Attributes    ctAttributes `json:"attributes"`
}

type ctIssuer struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
	UserName    string `json:"userName"`
}

type ctAttributes struct {
	CreationDate     string `json:"creationDate"`
	MFAAuthenticated string `json:"mfaAuthenticated"`
}

type ctResource struct {
	AccountID string `json:"accountId"`
	Type      string `json:"type"`
	ARN       string `json:"ARN"`
}

// trailEvent is a recorded event with the fields LookupEvents filters on.
type trailEvent struct {
	seq       uint64
	time      time.Time
	id        string
	name      string
	source    string
	username  string
	accessKey string
	readOnly  bool
	resources []string // ARNs, all of type AWS::SecretsManager::Secret
	// The CloudTrail record, as JSON: in memory, or, once appended to the
	// trail file, n bytes at off there (so the trail's memory is its index).
	record string
	off    int64
	n      int
}

func (e *trailEvent) before(t time.Time, seq uint64) bool {
	if c := e.time.Compare(t); c != 0 {
		return c < 0
	}
	return e.seq < seq
}

// trail keeps the events in time order, with an index per lookup
// attribute value, and appends each to its file.
type trail struct {
	mu     sync.RWMutex
	all    []*trailEvent
	index  map[string][]*trailEvent // attrKey(key, value) -> events, in time order
	seq    uint64
	file   *os.File // opened for appending and reading back records
	size   int64    // of file
	path   string
	log    *slog.Logger
	broken bool // the file could not be written; logged once
}

func attrKey(key, value string) string { return key + "\x00" + value }

func newTrail(path string, log *slog.Logger) (*trail, error) {
	t := &trail{index: map[string][]*trailEvent{}, path: path, log: log}
	if path == "" {
		return t, nil
	}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

// load reads the trail file: one CloudTrail record per line, oldest first.
// It keeps the file open to append to and to read records back from.
func (t *trail) load() error {
	f, err := os.OpenFile(t.path, os.O_RDWR|os.O_APPEND, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("smlocal: read the audit trail %s: %w", t.path, err)
	}
	rd := bufio.NewReaderSize(f, 64<<10)
	line := 0
	var off int64
	for {
		raw, err := rd.ReadBytes('\n')
		if len(raw) == 0 && err != nil {
			if err == io.EOF {
				break
			}
			f.Close()
			return fmt.Errorf("smlocal: read the audit trail %s: %w", t.path, err)
		}
		line++
		start := off
		off += int64(len(raw))
		b := bytes.TrimRight(raw, "\r\n")
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var rec ctRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			if !bytes.HasSuffix(raw, []byte("\n")) {
				// The last line, cut short by a crash mid-append: drop it.
				t.log.Warn("smlocal: the audit trail's last record is incomplete; dropping it", "file", t.path, "line", line)
				if err := f.Truncate(start); err != nil {
					f.Close()
					return fmt.Errorf("smlocal: truncate the audit trail %s: %w", t.path, err)
				}
				off = start
				break
			}
			f.Close()
			return fmt.Errorf("smlocal: audit trail %s line %d is not a CloudTrail record; remove the file to start a new trail", t.path, line)
		}
		when, err := time.Parse(time.RFC3339, rec.EventTime)
		if err != nil {
			f.Close()
			return fmt.Errorf("smlocal: audit trail %s line %d: eventTime %q is not RFC 3339; remove the file to start a new trail", t.path, line, rec.EventTime)
		}
		e := eventOf(&rec, when, "")
		e.off, e.n = start, len(b)
		t.addLocked(e)
	}
	if off > 0 && !bytes.HasSuffix(mustTail(f, off), []byte("\n")) {
		// A last line cut short (a crash mid-append): start the next on a line of its own.
		if _, err := f.WriteString("\n"); err == nil {
			off++
		}
	}
	t.file, t.size = f, off
	return nil
}

// mustTail returns the last byte of a file of size n ("" when unreadable).
func mustTail(f *os.File, n int64) []byte {
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, n-1); err != nil {
		return nil
	}
	return b
}

// recordOf returns an event's CloudTrail record. The caller holds t.mu.
func (t *trail) recordOf(e *trailEvent) string {
	if e.n == 0 || t.file == nil {
		return e.record
	}
	b := make([]byte, e.n)
	if _, err := t.file.ReadAt(b, e.off); err != nil {
		t.log.Error("smlocal: read a record back from the audit trail", "file", t.path, "err", err)
		return "{}"
	}
	return string(b)
}

// eventOf indexes a record.
func eventOf(rec *ctRecord, when time.Time, record string) *trailEvent {
	e := &trailEvent{
		// To the second, as CloudTrail records it, so that a lookup's
		// StartTime and EndTime (which the SDK sends to the millisecond)
		// take the whole second; the order within it is the record order.
		time: when.UTC().Truncate(time.Second), id: rec.EventID, name: rec.EventName, source: rec.EventSource,
		username: usernameOf(rec.UserIdentity), accessKey: rec.UserIdentity.AccessKeyID,
		readOnly: rec.ReadOnly, record: record,
	}
	for _, r := range rec.Resources {
		e.resources = append(e.resources, r.ARN)
	}
	return e
}

// usernameOf is LookupEvents' Username of an identity: the IAM user's name,
// or the session name of an assumed role.
func usernameOf(id ctUserIdentity) string {
	switch id.Type {
	case "IAMUser":
		return id.UserName
	case "AssumedRole":
		if i := strings.LastIndex(id.ARN, "/"); i >= 0 {
			return id.ARN[i+1:]
		}
	}
	return ""
}

// add records an event: into the indexes, then appended to the file.
func (t *trail) add(e *trailEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(e)
	if t.path == "" || t.broken {
		return
	}
	if t.file == nil {
		// Opened at the first event, so that a server whose state
		// directory is missing starts, as it did before it kept a trail,
		// and fails only the calls that save state.
		f, err := os.OpenFile(t.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			t.broken = true
			t.log.Error("smlocal: open the audit trail failed; events are kept in memory only", "file", t.path, "err", err)
			return
		}
		t.file = f
	}
	if _, err := t.file.WriteString(e.record + "\n"); err != nil {
		t.broken = true
		t.log.Error("smlocal: append to the audit trail failed; later events are kept in memory only", "file", t.path, "err", err)
		return
	}
	e.off, e.n, e.record = t.size, len(e.record), ""
	t.size += int64(e.n) + 1
}

func (t *trail) addLocked(e *trailEvent) {
	t.seq++
	e.seq = t.seq
	t.all = insertEvent(t.all, e)
	keys := []string{
		attrKey("EventName", e.name), attrKey("EventSource", e.source), attrKey("EventId", e.id),
		attrKey("ReadOnly", fmt.Sprint(e.readOnly)),
	}
	if e.username != "" {
		keys = append(keys, attrKey("Username", e.username))
	}
	if e.accessKey != "" {
		keys = append(keys, attrKey("AccessKeyId", e.accessKey))
	}
	if len(e.resources) > 0 {
		keys = append(keys, attrKey("ResourceType", resourceTypeSecret))
	}
	for _, r := range e.resources {
		keys = append(keys, attrKey("ResourceName", r))
	}
	for _, k := range keys {
		t.index[k] = insertEvent(t.index[k], e)
	}
}

// insertEvent adds e to a list in time order: at the end, unless the clock
// went back (a test's fake clock).
func insertEvent(list []*trailEvent, e *trailEvent) []*trailEvent {
	n := len(list)
	if n == 0 || !e.before(list[n-1].time, list[n-1].seq) {
		return append(list, e)
	}
	i := sort.Search(n, func(i int) bool { return !list[i].before(e.time, e.seq) })
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = e
	return list
}

func (t *trail) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.path = "" // no reopening: later events stay in memory
	if t.file == nil {
		return nil
	}
	// After Close the records on file are no longer served.
	err := t.file.Close()
	t.file = nil
	return err
}

// TrailEvents returns every recorded CloudTrail event as its JSON record,
// oldest first: what LookupEvents serves, for tests that search them.
func (s *Server) TrailEvents() []string {
	s.trail.mu.RLock()
	defer s.trail.mu.RUnlock()
	out := make([]string, len(s.trail.all))
	for i, e := range s.trail.all {
		out[i] = s.trail.recordOf(e)
	}
	return out
}

// identity is the userIdentity of a call signed with accessKey.
func (s *Server) identity(accessKey string) ctUserIdentity {
	if accessKey == "" {
		empty := ""
		return ctUserIdentity{Type: "AWSAccount", PrincipalID: &empty, AccountID: "ANONYMOUS_PRINCIPAL"}
	}
	arn := fmt.Sprintf("arn:aws:iam::%s:user/%s", s.opts.AccountID, UnknownPrincipalName)
	if p, ok := s.opts.Principals.Lookup(accessKey); ok {
		arn = p.ARN
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		parts = []string{"arn", "aws", "iam", "", s.opts.AccountID, "user/" + UnknownPrincipalName}
	}
	account, resource := parts[4], parts[5]
	// rolePath is the role's path (service-role/ of role/service-role/app):
	// an assumed-role ARN never shows it, its sessionIssuer's ARN does.
	rolePath := ""
	if role, ok := strings.CutPrefix(resource, "role/"); ok && parts[2] == "iam" {
		// A caller is never a role, always a session of one: record the
		// session IAM would give it, named after the access key.
		if i := strings.LastIndex(role, "/"); i >= 0 {
			rolePath, role = role[:i+1], role[i+1:]
		}
		arn = fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", parts[1], account, role, accessKey)
		resource = "assumed-role/" + role + "/" + accessKey
		parts[2] = "sts"
	}
	if rest, ok := strings.CutPrefix(resource, "assumed-role/"); ok && parts[2] == "sts" {
		role, session, _ := strings.Cut(rest, "/")
		roleID := "AROA" + principalIDOf("role:"+account+":"+role)
		pid := roleID + ":" + session
		return ctUserIdentity{
			Type: "AssumedRole", PrincipalID: &pid, ARN: arn, AccountID: account, AccessKeyID: accessKey,
			SessionContext: &ctSessionContext{
				SessionIssuer: ctIssuer{Type: "Role", PrincipalID: roleID, ARN: fmt.Sprintf("arn:%s:iam::%s:role/%s%s", parts[1], account, rolePath, role), AccountID: account, UserName: role},
				Attributes:    ctAttributes{CreationDate: s.started.Format(time.RFC3339), MFAAuthenticated: "false"},
			},
		}
	}
	name := resource[strings.LastIndex(resource, "/")+1:]
	pid := "AIDA" + principalIDOf("user:"+account+":"+name)
	return ctUserIdentity{Type: "IAMUser", PrincipalID: &pid, ARN: arn, AccountID: account, AccessKeyID: accessKey, UserName: name}
}

// principalIDOf is a stable unique id (as IAM's AIDA.../AROA... ids are)
// derived from a principal's name.
func principalIDOf(name string) string {
	sum := sha256.Sum256([]byte(name))
	return base32.StdEncoding.EncodeToString(sum[:])[:17]
}

// ctTime is CloudTrail's eventTime: RFC 3339 in UTC, to the second.
func ctTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// recordCall records one API call. body is the request; out the encoded
// response (nil on error); ae the error, if any.
func (s *Server) recordCall(r *http.Request, op string, at time.Time, requestID string, body, out []byte, ae *apiError) {
	key := localauth.AccessKeyID(r)
	rec := &ctRecord{
		EventVersion: "1.09", UserIdentity: s.identity(key), EventTime: ctTime(at),
		EventSource: eventSourceSM, EventName: op, AWSRegion: s.opts.Region,
		SourceIPAddress: sourceIP(r), UserAgent: r.UserAgent(),
		RequestID: requestID, EventID: newToken(), ReadOnly: readOnlyOps[op],
		EventType: "AwsApiCall", ManagementEvent: true, RecipientAccountID: s.opts.AccountID, EventCategory: "Management",
	}
	params := cleanJSON(body)
	rec.RequestParameters = params
	var arn string
	if ae != nil {
		rec.ErrorCode, rec.ErrorMessage = ae.Type, ae.Message
	} else if rec.ReadOnly {
		var resp struct{ ARN string }
		_ = json.Unmarshal(out, &resp)
		arn = resp.ARN
	} else {
		resp := cleanJSON(out)
		if m, ok := resp.(map[string]any); ok {
			arn, _ = m["arn"].(string)
		}
		rec.ResponseElements = resp
	}
	if arn == "" {
		// A failed call names the secret only by what the caller sent:
		// the secret it refers to, when there is one.
		if m, ok := params.(map[string]any); ok {
			if id, _ := m["secretId"].(string); id != "" {
				s.mu.Lock()
				if sec := s.st.lookup(id); sec != nil {
					arn = sec.ARN
				}
				s.mu.Unlock()
			}
		}
	}
	if arn != "" {
		rec.Resources = []ctResource{{AccountID: s.opts.AccountID, Type: resourceTypeSecret, ARN: arn}}
	}
	s.addRecord(rec, at)
	if op == "BatchGetSecretValue" && ae == nil {
		s.recordBatchReads(rec, out, at)
	}
}

// recordBatchReads records, after a BatchGetSecretValue, one GetSecretValue
// event per secret it returned or refused, as AWS does ("Secrets Manager
// generates a CloudTrail GetSecretValue log entry for each secret you
// request"): a read made in a batch names its secret like any other read,
// so a look-up by the secret's name finds it.
func (s *Server) recordBatchReads(batch *ctRecord, out []byte, at time.Time) {
	var resp struct {
		SecretValues []struct {
			ARN, VersionId string
			VersionStages  []string
		}
		Errors []struct{ SecretId, ErrorCode, Message string }
	}
	if json.Unmarshal(out, &resp) != nil {
		return
	}
	one := func(params map[string]any, arn, code, msg string) {
		rec := *batch
		rec.EventName, rec.EventID, rec.RequestParameters, rec.ResponseElements = "GetSecretValue", newToken(), params, nil
		rec.ErrorCode, rec.ErrorMessage, rec.Resources = code, msg, nil
		if arn != "" {
			rec.Resources = []ctResource{{AccountID: s.opts.AccountID, Type: resourceTypeSecret, ARN: arn}}
		}
		s.addRecord(&rec, at)
	}
	for _, v := range resp.SecretValues {
		params := map[string]any{"secretId": v.ARN}
		if v.VersionId != "" {
			params["versionId"] = v.VersionId
		}
		one(params, v.ARN, "", "")
	}
	for _, e := range resp.Errors {
		arn := ""
		s.mu.Lock()
		if sec := s.st.lookup(e.SecretId); sec != nil {
			arn = sec.ARN
		}
		s.mu.Unlock()
		one(map[string]any{"secretId": e.SecretId}, arn, e.ErrorCode, e.Message)
	}
}

// recordServiceEventLocked records one of the service's own rotation
// events (RotationStarted, RotationSucceeded, RotationFailed,
// RotationAbandoned), as Secrets Manager emits them: an AwsServiceEvent by
// secretsmanager.amazonaws.com naming the secret in additionalEventData.
func (s *Server) recordServiceEvent(name, secretARN string) {
	at := s.now()
	rec := &ctRecord{
		EventVersion: "1.08", UserIdentity: ctUserIdentity{AccountID: s.opts.AccountID, InvokedBy: eventSourceSM},
		EventTime: ctTime(at), EventSource: eventSourceSM, EventName: name, AWSRegion: s.opts.Region,
		SourceIPAddress: eventSourceSM, UserAgent: eventSourceSM,
		AdditionalEventData: map[string]string{"SecretId": secretARN},
		RequestID:           newToken(), EventID: newToken(),
		Resources: []ctResource{{AccountID: s.opts.AccountID, Type: resourceTypeSecret, ARN: secretARN}},
		EventType: "AwsServiceEvent", ManagementEvent: true, RecipientAccountID: s.opts.AccountID, EventCategory: "Management",
	}
	s.addRecord(rec, at)
}

func (s *Server) addRecord(rec *ctRecord, at time.Time) {
	b, err := json.Marshal(rec)
	if err != nil {
		s.log.Error("smlocal: encode a CloudTrail event", "event", rec.EventName, "err", err)
		return
	}
	e := eventOf(rec, at, string(b))
	s.trail.add(e)
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// cleanJSON decodes a JSON object for a CloudTrail record: keys in
// CloudTrail's camelCase (SecretId -> secretId, ARN -> arn), every secret
// field dropped, at any depth; nil for nothing left.
func cleanJSON(b []byte) any {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	v = clean(v)
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return nil
	}
	return v
}

func clean(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if secretFields[strings.ToLower(k)] {
				continue
			}
			out[camel(k)] = clean(val)
		}
		return out
	case []any:
		for i := range x {
			x[i] = clean(x[i])
		}
		return x
	}
	return v
}

// camel lowercases a key's leading capitals as CloudTrail does
// (SecretId -> secretId, ARN -> arn, KmsKeyId -> kmsKeyId).
func camel(k string) string {
	n := 0
	for n < len(k) && k[n] >= 'A' && k[n] <= 'Z' {
		n++
	}
	switch {
	case n == 0:
		return k
	case n == len(k):
		return strings.ToLower(k)
	case n > 1:
		n-- // ARNValue -> arnValue
	}
	return strings.ToLower(k[:n]) + k[n:]
}

// TrailFile is the file the audit trail is appended to ("" for none).
func (s *Server) TrailFile() string { return s.trailFile }
