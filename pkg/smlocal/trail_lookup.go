package smlocal

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CloudTrailTargetPrefix is the X-Amz-Target prefix of the CloudTrail API
// (JSON 1.1), as the aws-sdk-go-v2 cloudtrail client sends it;
// cloudTrailLongPrefix is the service's full name, which older SDKs and the
// AWS CLI v1 send.
const (
	CloudTrailTargetPrefix = "CloudTrail_20131101."
	cloudTrailLongPrefix   = "com.amazonaws.cloudtrail.v20131101." + CloudTrailTargetPrefix
)

// cloudTrailOperation returns the CloudTrail operation an X-Amz-Target names.
func cloudTrailOperation(target string) (string, bool) {
	if op, ok := strings.CutPrefix(target, cloudTrailLongPrefix); ok {
		return op, true
	}
	return strings.CutPrefix(target, CloudTrailTargetPrefix)
}

// CloudTrail's exceptions for LookupEvents.
const (
	excInvalidLookupAttributes = "InvalidLookupAttributesException"
	excInvalidTimeRange        = "InvalidTimeRangeException"
	excInvalidMaxResults       = "InvalidMaxResultsException"
	excInvalidTrailNextToken   = "InvalidNextTokenException"
	excInvalidEventCategory    = "InvalidEventCategoryException"
)

// lookupKeys are LookupEvents' attribute keys.
var lookupKeys = []string{"EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource", "AccessKeyId"}

const maxLookupResults = 50

// epochSeconds is a JSON 1.1 timestamp (seconds since the epoch, with a
// fraction) in either direction.
type epochSeconds struct{ time.Time }

func (e *epochSeconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("a timestamp must be epoch seconds")
	}
	sec, frac := math.Modf(f)
	e.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return nil
}

type lookupRequest struct {
	LookupAttributes []struct {
		AttributeKey   *string
		AttributeValue *string
	}
	StartTime     *epochSeconds
	EndTime       *epochSeconds
	EventCategory *string
	MaxResults    *int64
	NextToken     *string
}

type lookupEvent struct {
	EventID         string           `json:"EventId"`
	EventName       string           `json:"EventName"`
	ReadOnly        string           `json:"ReadOnly"`
	AccessKeyID     string           `json:"AccessKeyId,omitempty"`
	EventTime       epoch            `json:"EventTime"`
	EventSource     string           `json:"EventSource"`
	Username        string           `json:"Username,omitempty"`
	Resources       []lookupResource `json:"Resources"`
	CloudTrailEvent string           `json:"CloudTrailEvent"`
}

type lookupResource struct {
	ResourceType string `json:"ResourceType"`
	ResourceName string `json:"ResourceName"`
}

// lookupEvents serves CloudTrail's LookupEvents over the recorded events:
// at most one lookup attribute, a time range, newest first, MaxResults
// (1 to 50, default 50) a page, and a NextToken valid only with the same
// attribute and time range.
func (s *Server) lookupEvents(body []byte) (any, error) {
	var in lookupRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.LookupAttributes) > 1 {
		return nil, errorf(excInvalidLookupAttributes, "You cannot specify more than one lookup attribute; got %d", len(in.LookupAttributes))
	}
	index := ""
	if len(in.LookupAttributes) == 1 {
		a := in.LookupAttributes[0]
		key, value := deref(a.AttributeKey), deref(a.AttributeValue)
		if !contains(lookupKeys, key) {
			return nil, errorf(excInvalidLookupAttributes, "Lookup attribute key %q is not valid; use one of %s", key, strings.Join(lookupKeys, ", "))
		}
		if n := len(value); n < 1 || n > 2000 {
			return nil, errorf(excInvalidLookupAttributes, "The lookup attribute value for %s must be 1 to 2000 characters long, got %d", key, n)
		}
		index = attrKey(key, value)
	}
	if in.MaxResults != nil && (*in.MaxResults < 1 || *in.MaxResults > maxLookupResults) {
		return nil, errorf(excInvalidMaxResults, "MaxResults must be between 1 and %d, got %d", maxLookupResults, *in.MaxResults)
	}
	if in.StartTime != nil && in.EndTime != nil && in.StartTime.After(in.EndTime.Time) {
		return nil, errorf(excInvalidTimeRange, "The start time %s is after the end time %s", in.StartTime.Format(time.RFC3339), in.EndTime.Format(time.RFC3339))
	}
	if in.EventCategory != nil && *in.EventCategory != "insight" {
		return nil, errorf(excInvalidEventCategory, "EventCategory %q is not valid; the only value is insight", *in.EventCategory)
	}
	limit := maxLookupResults
	if in.MaxResults != nil {
		limit = int(*in.MaxResults)
	}
	params := lookupParamsHash(index, in)
	now := s.now()
	lo := now.Add(-trailRetention)
	if in.StartTime != nil && in.StartTime.After(lo) {
		lo = in.StartTime.Time
	}
	hi := now
	if in.EndTime != nil {
		hi = in.EndTime.Time
	}

	out := struct {
		Events    []lookupEvent `json:"Events"`
		NextToken string        `json:"NextToken,omitempty"`
	}{Events: []lookupEvent{}}
	if in.EventCategory != nil {
		return out, nil // no Insights events are recorded
	}

	s.trail.mu.RLock()
	defer s.trail.mu.RUnlock()
	list := s.trail.all
	if index != "" {
		list = s.trail.index[index]
	}
	// end: one past the newest event to return (time <= hi, or older
	// than the token's last event).
	end := sort.Search(len(list), func(i int) bool { return list[i].time.After(hi) })
	if in.NextToken != nil {
		t, seq, err := parseLookupToken(*in.NextToken, params)
		if err != nil {
			return nil, err
		}
		end = min(end, sort.Search(len(list), func(i int) bool { return !list[i].before(t, seq) }))
	}
	i := end - 1
	for ; i >= 0 && len(out.Events) < limit; i-- {
		e := list[i]
		if e.time.Before(lo) {
			break
		}
		le := lookupEvent{
			EventID: e.id, EventName: e.name, ReadOnly: strconv.FormatBool(e.readOnly), AccessKeyID: e.accessKey,
			EventTime: epoch(e.time), EventSource: e.source, Username: e.username, CloudTrailEvent: s.trail.recordOf(e),
			Resources: []lookupResource{},
		}
		for _, r := range e.resources {
			le.Resources = append(le.Resources, lookupResource{ResourceType: resourceTypeSecret, ResourceName: r})
		}
		out.Events = append(out.Events, le)
	}
	if i >= 0 && !list[i].time.Before(lo) && len(out.Events) > 0 {
		last := list[i+1]
		out.NextToken = lookupToken(last.time, last.seq, params)
	}
	return out, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// lookupParamsHash identifies the parameters a NextToken belongs to.
func lookupParamsHash(index string, in lookupRequest) string {
	var b strings.Builder
	b.WriteString(index)
	for _, t := range []*epochSeconds{in.StartTime, in.EndTime} {
		b.WriteByte(0)
		if t != nil {
			b.WriteString(strconv.FormatInt(t.UnixNano(), 10))
		}
	}
	b.WriteByte(0)
	b.WriteString(deref(in.EventCategory))
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// A NextToken names the last event returned; the next page starts with
// the one before it.
func lookupToken(t time.Time, seq uint64, params string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1.%d.%d.%s", t.UnixNano(), seq, params)))
}

func parseLookupToken(tok, params string) (time.Time, uint64, error) {
	bad := &apiError{Type: excInvalidTrailNextToken, Message: "Invalid NextToken: it is not one LookupEvents returned, or it was returned for other lookup attributes or another time range"}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return time.Time{}, 0, bad
	}
	parts := strings.Split(string(b), ".")
	if len(parts) != 4 || parts[0] != "v1" || parts[3] != params {
		return time.Time{}, 0, bad
	}
	ns, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, bad
	}
	return time.Unix(0, ns).UTC(), seq, nil
}

// cloudTrailOp answers one CloudTrail API call.
func (s *Server) cloudTrailOp(op string, body []byte) (any, error) {
	switch op {
	case "LookupEvents":
		return s.lookupEvents(body)
	}
	return nil, errorf(excUnknownOperation, "CloudTrail operation %s is not supported by the local stack; it serves LookupEvents", op)
}
