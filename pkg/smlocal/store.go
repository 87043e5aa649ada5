package smlocal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"time"
)

// Staging labels the service itself manages.
const (
	labelCurrent  = "AWSCURRENT"
	labelPrevious = "AWSPREVIOUS"
	labelPending  = "AWSPENDING"
)

// Version pruning: unlabeled versions beyond the newest maxVersions are
// deleted, unless they are younger than pruneMinAge.
const (
	maxVersions = 100
	pruneMinAge = 24 * time.Hour
)

// storedVersion is one version of a secret. HasValue is false for the
// valueless AWSPENDING placeholder that RotateSecret creates.
type storedVersion struct {
	ID            string    `json:"id"`
	HasValue      bool      `json:"hasValue"`
	String        *string   `json:"string,omitempty"`
	Binary        []byte    `json:"binary,omitempty"`
	Created       time.Time `json:"created"`
	LastAccessed  time.Time `json:"lastAccessed,omitzero"`
	RotationToken string    `json:"rotationToken,omitempty"`
}

// sameValue reports whether the version holds exactly the given value.
func (v *storedVersion) sameValue(s *string, b []byte) bool {
	if !v.HasValue {
		return false
	}
	if s != nil || v.String != nil {
		return s != nil && v.String != nil && *s == *v.String
	}
	return bytes.Equal(v.Binary, b)
}

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// rotationRules mirrors RotationRulesType.
type rotationRules struct {
	AutomaticallyAfterDays *int64  `json:"AutomaticallyAfterDays,omitempty"`
	Duration               *string `json:"Duration,omitempty"`
	ScheduleExpression     *string `json:"ScheduleExpression,omitempty"`
}

// storedSecret is a secret with its versions and labels.
type storedSecret struct {
	ARN               string                    `json:"arn"`
	Name              string                    `json:"name"`
	Description       *string                   `json:"description,omitempty"`
	KmsKeyID          *string                   `json:"kmsKeyId,omitempty"`
	Tags              []tag                     `json:"tags,omitempty"`
	Versions          map[string]*storedVersion `json:"versions"`
	Labels            map[string]string         `json:"labels"` // label -> version ID
	RotationEnabled   *bool                     `json:"rotationEnabled,omitempty"`
	RotationLambdaARN string                    `json:"rotationLambdaArn,omitempty"`
	Rules             *rotationRules            `json:"rules,omitempty"`
	Created           time.Time                 `json:"created"`
	LastChanged       time.Time                 `json:"lastChanged,omitzero"`
	LastAccessed      time.Time                 `json:"lastAccessed,omitzero"`
	LastRotated       time.Time                 `json:"lastRotated,omitzero"`
	RotationBase      time.Time                 `json:"rotationBase,omitzero"` // when the schedule was last anchored
	NextRotation      time.Time                 `json:"nextRotation,omitzero"`
	Deleted           time.Time                 `json:"deleted,omitzero"`      // when DeleteSecret was called
	DeletionDate      time.Time                 `json:"deletionDate,omitzero"` // when it will be purged
	ResourcePolicy    string                    `json:"resourcePolicy,omitempty"`
}

func (s *storedSecret) isDeleted() bool { return !s.Deleted.IsZero() }

// labelsOf returns the labels attached to version id, sorted.
func (s *storedSecret) labelsOf(id string) []string {
	var out []string
	for l, v := range s.Labels {
		if v == id {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// versionsToStages maps every labeled version to its labels.
func (s *storedSecret) versionsToStages() map[string][]string {
	m := map[string][]string{}
	for l, v := range s.Labels {
		m[v] = append(m[v], l)
	}
	for _, ls := range m {
		sort.Strings(ls)
	}
	return m
}

// attach puts label on version id, moving it off any other version. When
// AWSCURRENT moves, AWSPREVIOUS moves to the version it left.
func (s *storedSecret) attach(label, id string) {
	old, had := s.Labels[label]
	if had && old == id {
		return
	}
	s.Labels[label] = id
	if label == labelCurrent && had {
		s.Labels[labelPrevious] = old
	}
}

// detach removes label from whatever version holds it.
func (s *storedSecret) detach(label string) { delete(s.Labels, label) }

// prune deletes unlabeled versions beyond the newest maxVersions, never one
// younger than pruneMinAge.
func (s *storedSecret) prune(now time.Time) {
	if len(s.Versions) <= maxVersions {
		return
	}
	all := make([]*storedVersion, 0, len(s.Versions))
	for _, v := range s.Versions {
		all = append(all, v)
	}
	sortVersionsNewestFirst(all)
	labeled := s.versionsToStages()
	for _, v := range all[maxVersions:] {
		if _, ok := labeled[v.ID]; ok || now.Sub(v.Created) < pruneMinAge {
			continue
		}
		delete(s.Versions, v.ID)
	}
}

func sortVersionsNewestFirst(vs []*storedVersion) {
	slices.SortFunc(vs, func(a, b *storedVersion) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// state is everything the server stores, as saved to the state file.
type state struct {
	Secrets map[string]*storedSecret `json:"secrets"` // by ARN
	// refs maps names and partial ARNs to ARNs, so that a lookup by name
	// does not scan every secret. It is not saved: nil means rebuild it.
	// Every secret added to Secrets is added to it (index); an entry whose
	// secret is gone or renamed is found out on use, and the map rebuilt.
	refs map[string]string
}

// index adds sec to the name and partial-ARN index (when there is one: a
// nil index is rebuilt whole on the next lookup).
func (st *state) index(sec *storedSecret) {
	if st.refs == nil {
		return
	}
	st.refs[sec.Name] = sec.ARN
	if len(sec.ARN) > 7 {
		st.refs[sec.ARN[:len(sec.ARN)-7]] = sec.ARN
	}
}

func (st *state) reindex() {
	st.refs = make(map[string]string, 2*len(st.Secrets))
	for _, sec := range st.Secrets {
		st.index(sec)
	}
}

// lookup finds a secret by name, full ARN or partial ARN (the ARN without
// its -xxxxxx suffix), in constant time.
func (st *state) lookup(id string) *storedSecret {
	if s, ok := st.Secrets[id]; ok {
		return s
	}
	if st.refs == nil {
		st.reindex()
	}
	for attempt := 0; attempt < 2; attempt++ {
		arn, ok := st.refs[id]
		if !ok {
			return nil // every secret is indexed when added: none has this name
		}
		if s := st.Secrets[arn]; s != nil && refersTo(s.ARN, s.Name, id) {
			return s
		}
		st.reindex() // the entry was stale: the secret is gone
	}
	return nil
}

// refersTo reports whether id, a SecretId (name, full ARN or partial ARN:
// the ARN without its -xxxxxx suffix), names the secret with this ARN and name.
func refersTo(arn, name, id string) bool {
	if !strings.HasPrefix(id, "arn:") {
		return name == id
	}
	return arn == id || (len(arn) == len(id)+7 && strings.HasPrefix(arn, id) && arn[len(id)] == '-')
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomSuffix returns n random alphanumerics, as in a secret ARN's suffix.
func randomSuffix(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// newToken returns a random UUID-formatted token.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func dayOf(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(24 * time.Hour)
}
