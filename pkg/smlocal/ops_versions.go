package smlocal

import (
	"encoding/base64"

	"slices"
	"strconv"
	"strings"
	"unicode"
)

func (s *Server) getSecretValue(body []byte) (any, error) {
	var in struct {
		SecretId     *string
		VersionId    *string
		VersionStage *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.valueLocked(in.SecretId, in.VersionId, in.VersionStage)
}

// valueLocked is GetSecretValue (and each secret of BatchGetSecretValue):
// the version named by id and stage, AWSCURRENT when both are nil. The
// caller holds s.mu.
func (s *Server) valueLocked(secretID, versionID, stage *string) (map[string]any, error) {
	in := struct{ VersionId, VersionStage *string }{versionID, stage}
	sec, err := s.secretRefLocked(secretID, true)
	if err != nil {
		return nil, err
	}
	var v *storedVersion
	switch {
	case in.VersionId != nil:
		v = sec.Versions[*in.VersionId]
		if v == nil {
			return nil, valueNotFoundForVersion(*in.VersionId)
		}
		if in.VersionStage != nil && sec.Labels[*in.VersionStage] != v.ID {
			return nil, &apiError{Type: excInvalidRequest, Message: msgStageVersionMismatch}
		}
		if !v.HasValue {
			return nil, valueNotFoundForVersion(v.ID)
		}
	default:
		stage := labelCurrent
		if in.VersionStage != nil {
			stage = *in.VersionStage
		}
		id, ok := sec.Labels[stage]
		v = sec.Versions[id]
		if !ok || v == nil || !v.HasValue {
			return nil, valueNotFoundForStage(stage)
		}
	}
	now := s.now()
	// Only the day is kept, so persisting is needed once a day at most.
	if !dayOf(now).Equal(dayOf(sec.LastAccessed)) {
		sec.LastAccessed = now
		v.LastAccessed = now
		if err := s.commitLocked(); err != nil {
			return nil, err
		}
	}
	v.LastAccessed = now
	out := map[string]any{
		"ARN":           sec.ARN,
		"Name":          sec.Name,
		"VersionId":     v.ID,
		"VersionStages": sec.labelsOf(v.ID),
		"CreatedDate":   epoch(v.Created),
	}
	if v.String != nil {
		out["SecretString"] = *v.String
	} else {
		out["SecretBinary"] = v.Binary
	}
	return out, nil
}

func (s *Server) putSecretValue(body []byte) (any, error) {
	var in struct {
		SecretId           *string
		ClientRequestToken *string
		SecretString       *string
		SecretBinary       []byte
		VersionStages      []string
		RotationToken      *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkValue(in.SecretString, in.SecretBinary); err != nil {
		return nil, err
	}
	if in.SecretString == nil && in.SecretBinary == nil {
		return nil, errorf(excInvalidParameter, "You must provide either SecretString or SecretBinary.")
	}
	tok := newToken()
	if in.ClientRequestToken != nil {
		tok = *in.ClientRequestToken
	}
	stages := in.VersionStages
	if stages == nil {
		stages = []string{labelCurrent}
	}
	rt := ""
	if in.RotationToken != nil {
		rt = *in.RotationToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	if _, err := s.putVersionLocked(sec, tok, in.SecretString, in.SecretBinary, stages, rt); err != nil {
		return nil, err
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name, "VersionId": tok, "VersionStages": sec.labelsOf(tok)}, nil
}

func (s *Server) updateSecretVersionStage(body []byte) (any, error) {
	var in struct {
		SecretId            *string
		VersionStage        *string
		MoveToVersionId     *string
		RemoveFromVersionId *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.VersionStage == nil || *in.VersionStage == "" {
		return nil, errorf(excInvalidParameter, "VersionStage is required; name the staging label to move or remove")
	}
	if err := checkStage(*in.VersionStage); err != nil {
		return nil, err
	}
	stage := *in.VersionStage
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	holder, attached := sec.Labels[stage]
	if in.RemoveFromVersionId != nil {
		if _, ok := sec.Versions[*in.RemoveFromVersionId]; !ok {
			return nil, valueNotFoundForVersion(*in.RemoveFromVersionId)
		}
		if !attached || holder != *in.RemoveFromVersionId {
			return nil, errorf(excInvalidParameter, "The parameter RemoveFromVersionId is invalid. Staging label %s is not attached to version %s.", stage, *in.RemoveFromVersionId)
		}
	}
	if in.MoveToVersionId == nil {
		if in.RemoveFromVersionId == nil {
			return nil, errorf(excInvalidParameter, "You must specify MoveToVersionId, RemoveFromVersionId, or both.")
		}
		if stage == labelCurrent {
			return nil, errorf(excInvalidParameter, "You can't remove the staging label AWSCURRENT without moving it to another version; pass MoveToVersionId too.")
		}
		sec.detach(stage)
	} else {
		to := sec.Versions[*in.MoveToVersionId]
		if to == nil {
			return nil, valueNotFoundForVersion(*in.MoveToVersionId)
		}
		if attached && holder != to.ID && in.RemoveFromVersionId == nil {
			return nil, errorf(excInvalidParameter, "The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", stage, holder)
		}
		if stage == labelCurrent && !to.HasValue {
			return nil, errorf(excInvalidRequest, "You can't attach AWSCURRENT to version %s because it has no secret value yet; call PutSecretValue for it first.", to.ID)
		}
		if !slices.Contains(sec.labelsOf(to.ID), stage) && len(sec.labelsOf(to.ID)) >= 20 {
			return nil, errorf(excLimitExceeded, "version %s already has 20 staging labels; remove one first", to.ID)
		}
		sec.attach(stage, to.ID)
	}
	now := s.now()
	sec.LastChanged = now
	sec.prune(now)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name}, nil
}

// page returns the slice of n items that a MaxResults/NextToken pair asks
// for, and the next token ("" when done).
func page(n int, maxResults *int64, nextToken *string) (lo, hi int, next string, err error) {
	size := 100
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > 100 {
			return 0, 0, "", errorf(excInvalidParameter, "MaxResults must be from 1 to 100, got %d", *maxResults)
		}
		size = int(*maxResults)
	}
	if nextToken != nil && *nextToken != "" {
		b, derr := base64.RawURLEncoding.DecodeString(*nextToken)
		off, perr := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if derr != nil || perr != nil || !strings.HasPrefix(string(b), "offset:") || off < 0 || off > n {
			return 0, 0, "", &apiError{Type: excInvalidNextToken, Message: msgInvalidNextToken}
		}
		lo = off
	}
	hi = min(lo+size, n)
	if hi < n {
		next = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(hi)))
	}
	return lo, hi, next, nil
}

func (s *Server) listSecretVersionIds(body []byte) (any, error) {
	var in struct {
		SecretId          *string
		IncludeDeprecated *bool
		MaxResults        *int64
		NextToken         *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	stages := sec.versionsToStages()
	var vs []*storedVersion
	for _, v := range sec.Versions {
		if _, labeled := stages[v.ID]; labeled || (in.IncludeDeprecated != nil && *in.IncludeDeprecated) {
			vs = append(vs, v)
		}
	}
	sortVersionsNewestFirst(vs)
	lo, hi, next, err := page(len(vs), in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	type entry struct {
		VersionId        string
		VersionStages    []string `json:",omitempty"`
		CreatedDate      *epoch   `json:",omitempty"`
		LastAccessedDate *epoch   `json:",omitempty"`
	}
	out := struct {
		ARN, Name string
		Versions  []entry
		NextToken string `json:",omitempty"`
	}{ARN: sec.ARN, Name: sec.Name, Versions: []entry{}, NextToken: next}
	for _, v := range vs[lo:hi] {
		out.Versions = append(out.Versions, entry{v.ID, stages[v.ID], ts(v.Created), ts(dayOf(v.LastAccessed))})
	}
	return out, nil
}

type filter struct {
	Key    string
	Values []string
}

// matchFilter applies one ListSecrets filter as AWS's reference describes
// it: name, tag-key, tag-value, primary-region and owning-service are
// case-sensitive prefix matches, description a case-insensitive one, and all
// splits the value into words and looks for each, case-insensitively, at the
// start of a word of the name, description, tag keys or tag values. Any value
// may match; a value starting with "!" negates.
func matchFilter(sec *storedSecret, region string, f filter) (bool, error) {
	var fields []string
	fold := false
	switch f.Key {
	case "name":
		fields = []string{sec.Name}
	case "description":
		fold = true
		if sec.Description != nil {
			fields = []string{*sec.Description}
		}
	case "tag-key":
		for _, t := range sec.Tags {
			fields = append(fields, t.Key)
		}
	case "tag-value":
		for _, t := range sec.Tags {
			fields = append(fields, t.Value)
		}
	case "all":
		fold = true
		attrs := []string{sec.Name}
		if sec.Description != nil {
			attrs = append(attrs, *sec.Description)
		}
		for _, t := range sec.Tags {
			attrs = append(attrs, t.Key, t.Value)
		}
		for _, a := range attrs {
			fields = append(fields, words(a)...)
		}
	case "primary-region":
		fields = []string{region}
	case "owning-service":
		fields = nil // no managed secrets here
	default:
		return false, errorf(excInvalidParameter, "filter key %q is not valid; use name, description, tag-key, tag-value, primary-region, owning-service or all", f.Key)
	}
	if len(f.Values) == 0 || len(f.Values) > 10 {
		return false, errorf(excInvalidParameter, "filter %s has %d values; give 1 to 10", f.Key, len(f.Values))
	}
	has := func(val string) bool {
		return slices.ContainsFunc(fields, func(s string) bool {
			if fold {
				return strings.HasPrefix(strings.ToLower(s), strings.ToLower(val))
			}
			return strings.HasPrefix(s, val)
		})
	}
	for _, val := range f.Values {
		neg := strings.HasPrefix(val, "!")
		val = strings.TrimPrefix(val, "!")
		hit := has(val)
		if f.Key == "all" {
			hit = true
			for _, w := range words(val) {
				hit = hit && has(w)
			}
		}
		if hit != neg {
			return true, nil
		}
	}
	return false, nil
}

// words splits s the way Secrets Manager's search does: at every change from
// lowercase to uppercase, between letters and digits, and at anything that is
// neither.
func words(s string) []string {
	var out []string
	var cur []rune
	kind := func(r rune) int {
		switch {
		case unicode.IsLower(r):
			return 1
		case unicode.IsUpper(r):
			return 2
		case unicode.IsDigit(r):
			return 3
		}
		return 0
	}
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	prev := 0
	for _, r := range s {
		k := kind(r)
		switch {
		case k == 0:
			flush()
		case prev == 1 && k == 2, prev == 3 && k != 3, prev != 3 && prev != 0 && k == 3:
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
		prev = k
	}
	flush()
	return out
}

func (s *Server) listSecrets(body []byte) (any, error) {
	var in struct {
		Filters                []filter
		MaxResults             *int64
		NextToken              *string
		IncludePlannedDeletion *bool
		SortOrder              *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var secs []*storedSecret
	for _, sec := range s.st.Secrets {
		if sec.isDeleted() && !sec.DeletionDate.After(now) {
			continue
		}
		if sec.isDeleted() && (in.IncludePlannedDeletion == nil || !*in.IncludePlannedDeletion) {
			continue
		}
		keep := true
		for _, f := range in.Filters {
			ok, err := matchFilter(sec, s.opts.Region, f)
			if err != nil {
				return nil, err
			}
			keep = keep && ok
		}
		if keep {
			secs = append(secs, sec)
		}
	}
	desc := in.SortOrder != nil && *in.SortOrder == "desc"
	slices.SortFunc(secs, func(a, b *storedSecret) int {
		c := a.Created.Compare(b.Created)
		if c == 0 {
			c = strings.Compare(a.ARN, b.ARN)
		}
		if desc {
			c = -c
		}
		return c
	})
	lo, hi, next, err := page(len(secs), in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := struct {
		SecretList []secretEntry
		NextToken  string `json:",omitempty"`
	}{SecretList: []secretEntry{}, NextToken: next}
	for _, sec := range secs[lo:hi] {
		e := s.entryLocked(sec)
		e.SecretVersionsToStages = sec.versionsToStages()
		out.SecretList = append(out.SecretList, e)
	}
	return out, nil
}

func (s *Server) getRandomPassword(body []byte) (any, error) {
	var in passwordRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	pw, err := in.generate()
	if err != nil {
		return nil, err
	}
	return map[string]string{"RandomPassword": pw}, nil
}
