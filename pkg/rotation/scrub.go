package rotation

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Redacted replaces every secret value in logs and errors.
const Redacted = "[REDACTED]"

// minScrubLen is the shortest value the scrubber hides: shorter strings are
// not credentials, and hiding them would wreck every message.
const minScrubLen = 4

// scrubber remembers every secret value an invocation has seen and removes
// them from text. It is the one layer through which errors and log lines
// pass; credential types never need to scrub.
type scrubber struct {
	mu     sync.Mutex
	public []string // fields of the type's secrets that are not secret
	values map[string]bool
	sorted []string // longest first, rebuilt lazily
}

// newScrubber returns a scrubber that treats the values of the public
// fields (see PublicFielder) as safe to show.
func newScrubber(public ...string) *scrubber {
	return &scrubber{public: public, values: map[string]bool{}}
}

// addSecret registers every secret string of a secret's value.
func (s *scrubber) addSecret(value string) {
	for _, v := range SecretStrings(value, s.public...) {
		s.add(v)
	}
}

// SecretStrings returns the strings of a secret's value that must never be
// shown: every string leaf of its JSON except the values of the public
// fields (at any depth), or the whole value when it is not a JSON object.
// Without public fields every string is secret. Strings shorter than four
// characters are left out: they are not credentials.
func SecretStrings(value string, public ...string) []string {
	var out []string
	var v any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		v = value
	}
	if _, ok := v.(map[string]any); !ok && len(value) >= minScrubLen {
		out = append(out, value)
	}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case string:
			if !slices.Contains(public, key) && len(x) >= minScrubLen {
				out = append(out, x)
			}
		}
	}
	walk("", v)
	return out
}

// add registers one value in the forms it may take in a message: as is,
// JSON-escaped (with and without HTML escaping), Go-quoted and URL-escaped
// (query and path escaping, and the user-info escaping of a password in a
// DSN such as postgres://u:pw@host, which escapes other characters than
// either). A secret value is JSON text, so it holds its strings
// JSON-escaped: the value quoted again (%q, or a JSON log attribute holding
// it) escapes them twice, and those forms (each escaping of each escaped
// form) are registered too.
func (s *scrubber) add(v string) {
	if s == nil || len(v) < minScrubLen {
		return
	}
	forms := []string{v}
	json1 := quoted(v)
	forms = append(forms, json1...)
	for _, j := range json1 {
		if j != v {
			forms = append(forms, quoted(j)...)
		}
	}
	userinfo := strings.TrimPrefix(url.UserPassword("", v).String(), ":")
	forms = append(forms, url.QueryEscape(v), url.PathEscape(v), userinfo)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range forms {
		if len(f) >= minScrubLen && !s.values[f] {
			s.values[f] = true
			s.sorted = nil
		}
	}
}

// quoted returns v's escaped forms without their quotes: JSON with HTML
// escaping (encoding/json's default), JSON without it (as the engine writes
// the pending value, and log/slog its lines: <, > and & kept), and Go
// quoting (%q).
func quoted(v string) []string {
	var out []string
	if b, err := json.Marshal(v); err == nil {
		out = append(out, string(b[1:len(b)-1]))
	}
	if b, err := marshalNoEscape(v); err == nil {
		out = append(out, string(b[1:len(b)-1]))
	}
	q := strconv.Quote(v)
	return append(out, q[1:len(q)-1])
}

// scrub returns text with every registered value replaced by Redacted.
func (s *scrubber) scrub(text string) string {
	if s == nil {
		return text
	}
	s.mu.Lock()
	if s.sorted == nil {
		for v := range s.values {
			s.sorted = append(s.sorted, v)
		}
		sort.Slice(s.sorted, func(i, j int) bool {
			if len(s.sorted[i]) != len(s.sorted[j]) {
				return len(s.sorted[i]) > len(s.sorted[j])
			}
			return s.sorted[i] < s.sorted[j]
		})
	}
	vals := s.sorted
	s.mu.Unlock()
	for _, v := range vals {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, Redacted)
		}
	}
	return text
}

type scrubberKey struct{}

func withScrubber(ctx context.Context, s *scrubber) context.Context {
	return context.WithValue(ctx, scrubberKey{}, s)
}

func scrubberFrom(ctx context.Context) *scrubber {
	s, _ := ctx.Value(scrubberKey{}).(*scrubber)
	return s
}

// scrubHandler is a slog.Handler that scrubs the message, every string
// attribute, every key and every group name with the scrubber of the
// record's context, so any log line written with a rotation's context is
// safe, whoever writes it. Attributes
// and groups bound with Logger.With and WithGroup are kept here, not handed
// to next at once, so that they are scrubbed too: a secret they hold may be
// registered only after they were bound.
type scrubHandler struct {
	next slog.Handler
	with []withOp // applied to next, scrubbed, for every record
}

// withOp is one WithGroup (group set) or WithAttrs (attrs set) call.
type withOp struct {
	group string
	attrs []slog.Attr
}

// NewScrubHandler wraps next so that records logged with a rotation's
// context have every secret value of that rotation replaced by Redacted.
func NewScrubHandler(next slog.Handler) slog.Handler { return scrubHandler{next: next} }

func (h scrubHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	s := scrubberFrom(ctx)
	next := h.next
	for _, op := range h.with {
		if op.group != "" {
			next = next.WithGroup(s.scrub(op.group))
			continue
		}
		if s == nil {
			next = next.WithAttrs(op.attrs)
			continue
		}
		as := make([]slog.Attr, len(op.attrs))
		for i, a := range op.attrs {
			as[i] = scrubAttr(s, a)
		}
		next = next.WithAttrs(as)
	}
	if s == nil {
		return next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, s.scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(s, a))
		return true
	})
	return next.Handle(ctx, out)
}

// scrubAttr scrubs an attribute's key and string values: a key can be a
// secret too (a map's keys logged one by one, say).
func scrubAttr(s *scrubber, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	a.Key = s.scrub(a.Key)
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.scrub(v.String()))
	case slog.KindGroup:
		as := v.Group()
		out := make([]any, len(as))
		for i, g := range as {
			out[i] = scrubAttr(s, g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, s.scrub(err.Error()))
		}
		if b, err := json.Marshal(v.Any()); err == nil {
			return slog.Any(a.Key, json.RawMessage(s.scrub(string(b))))
		}
		return slog.String(a.Key, s.scrub(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h scrubHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return scrubHandler{next: h.next, with: append(slices.Clip(h.with), withOp{attrs: slices.Clone(as)})}
}

func (h scrubHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return scrubHandler{next: h.next, with: append(slices.Clip(h.with), withOp{group: name})}
}
