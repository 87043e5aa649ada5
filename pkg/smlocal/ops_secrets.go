package smlocal

import (
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@!-]{1,512}$`)

// secretRef resolves SecretId for an operation; with live it refuses a
// secret that is marked for deletion. The caller holds s.mu.
func (s *Server) secretRefLocked(id *string, live bool) (*storedSecret, error) {
	if id == nil || *id == "" {
		return nil, errorf(excInvalidParameter, "SecretId is required; pass the secret's name or ARN")
	}
	sec := s.st.lookup(*id)
	if sec != nil && sec.isDeleted() && !sec.DeletionDate.After(s.now()) {
		delete(s.st.Secrets, sec.ARN) // recovery window over
		sec = nil
	}
	if sec == nil {
		return nil, notFound()
	}
	if live && sec.isDeleted() {
		return nil, markedForDeletion()
	}
	return sec, nil
}

func checkToken(tok string) error {
	if n := len(tok); n < 32 || n > 64 {
		return errorf(excInvalidParameter, "ClientRequestToken must be 32 to 64 characters long, got %d; omit it to let the SDK generate one", n)
	}
	return nil
}

// checkStage refuses a staging label AWS refuses: 1 to 256 characters.
func checkStage(label string) error {
	if n := utf8.RuneCountInString(label); n < 1 || n > 256 {
		return errorf(excInvalidParameter, "a staging label must be 1 to 256 characters long, got %d", n)
	}
	return nil
}

func checkValue(str *string, bin []byte) error {
	if str != nil && bin != nil {
		return &apiError{Type: excInvalidParameter, Message: msgBothValues}
	}
	if str != nil && len(*str) > 65536 || len(bin) > 65536 {
		return errorf(excInvalidParameter, "the secret value is larger than 65536 bytes; store a smaller value")
	}
	return nil
}

// putVersionLocked stores a value under token with the given labels
// (PutSecretValue's rules). It fills a valueless placeholder; same token and
// same value is a no-op; same token and another value is ResourceExistsException.
func (s *Server) putVersionLocked(sec *storedSecret, token string, str *string, bin []byte, stages []string, rotationToken string) (*storedVersion, error) {
	if err := checkToken(token); err != nil {
		return nil, err
	}
	if len(stages) > 20 {
		return nil, errorf(excLimitExceeded, "a version can have at most 20 staging labels, got %d", len(stages))
	}
	for _, l := range stages {
		if err := checkStage(l); err != nil {
			return nil, err
		}
	}
	now := s.now()
	if v, ok := sec.Versions[token]; ok {
		if v.HasValue {
			if v.sameValue(str, bin) {
				return v, nil
			}
			return nil, errorf(excResourceExists, "You can't use ClientRequestToken %s because that value is already in use for a version of secret %s.", token, sec.ARN)
		}
		v.HasValue, v.String, v.Binary = true, str, bin
	} else {
		sec.Versions[token] = &storedVersion{ID: token, HasValue: true, String: str, Binary: bin, Created: now}
	}
	v := sec.Versions[token]
	if rotationToken != "" {
		v.RotationToken = rotationToken
	}
	if _, ok := sec.Labels[labelCurrent]; !ok && !slices.Contains(stages, labelCurrent) {
		stages = append(stages, labelCurrent) // the first value is always current
	}
	for _, l := range stages {
		sec.attach(l, token)
	}
	if slices.Contains(stages, labelCurrent) && sec.Rules != nil && sec.Rules.AutomaticallyAfterDays != nil {
		// The reference: with AutomaticallyAfterDays, a manual update of the
		// value counts as a rotation for the schedule.
		sec.RotationBase = now
		sec.NextRotation = nextRotation(sec)
	}
	sec.LastChanged = now
	sec.prune(now)
	return v, nil
}

func (s *Server) createSecret(body []byte) (any, error) {
	var in struct {
		Name               *string
		ClientRequestToken *string
		Description        *string
		KmsKeyId           *string
		SecretString       *string
		SecretBinary       []byte
		Tags               []tag
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Name == nil || !validName.MatchString(*in.Name) {
		return nil, errorf(excInvalidParameter, "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	if err := checkValue(in.SecretString, in.SecretBinary); err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.st.lookup(*in.Name); old != nil && old.Name == *in.Name {
		if old.isDeleted() && old.DeletionDate.After(s.now()) {
			return nil, errorf(excInvalidRequest, "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		if !old.isDeleted() {
			return nil, errorf(excResourceExists, "The operation failed because the secret %s already exists.", *in.Name)
		}
		delete(s.st.Secrets, old.ARN)
	}
	now := s.now()
	sec := &storedSecret{
		Name:        *in.Name,
		Description: in.Description,
		KmsKeyID:    in.KmsKeyId,
		Tags:        mergeTags(nil, in.Tags),
		Versions:    map[string]*storedVersion{},
		Labels:      map[string]string{},
		Created:     now,
		LastChanged: now,
	}
	for {
		sec.ARN = fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.opts.Region, s.opts.AccountID, sec.Name, randomSuffix(6))
		if _, taken := s.st.Secrets[sec.ARN]; !taken {
			break
		}
	}
	out, err := s.putNewCurrentLocked(sec, in.ClientRequestToken, in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	s.st.Secrets[sec.ARN] = sec
	s.st.index(sec)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return out, nil
}

// secretEntry is DescribeSecret's response and ListSecrets' entry.
type secretEntry struct {
	ARN                    string
	Name                   string
	Description            *string             `json:",omitempty"`
	KmsKeyId               *string             `json:",omitempty"`
	RotationEnabled        *bool               `json:",omitempty"`
	RotationLambdaARN      *string             `json:",omitempty"`
	RotationRules          *rotationRules      `json:",omitempty"`
	LastRotatedDate        *epoch              `json:",omitempty"`
	LastChangedDate        *epoch              `json:",omitempty"`
	LastAccessedDate       *epoch              `json:",omitempty"`
	DeletedDate            *epoch              `json:",omitempty"`
	NextRotationDate       *epoch              `json:",omitempty"`
	PrimaryRegion          string              `json:",omitempty"`
	CreatedDate            *epoch              `json:",omitempty"`
	Tags                   []tag               `json:",omitempty"`
	VersionIdsToStages     map[string][]string `json:",omitempty"`
	SecretVersionsToStages map[string][]string `json:",omitempty"`
}

func (s *Server) entryLocked(sec *storedSecret) secretEntry {
	e := secretEntry{
		ARN:              sec.ARN,
		Name:             sec.Name,
		Description:      sec.Description,
		KmsKeyId:         sec.KmsKeyID,
		RotationEnabled:  sec.RotationEnabled,
		LastChangedDate:  ts(sec.LastChanged),
		LastAccessedDate: ts(dayOf(sec.LastAccessed)),
		DeletedDate:      ts(sec.DeletionDate), // the reference: "the date the secret is scheduled for deletion"
		PrimaryRegion:    s.opts.Region,
		CreatedDate:      ts(sec.Created),
		Tags:             slices.Clone(sec.Tags),
	}
	if sec.RotationLambdaARN != "" {
		e.RotationLambdaARN = &sec.RotationLambdaARN
	}
	if sec.Rules != nil {
		r := *sec.Rules
		e.RotationRules = &r
	}
	// The reference: both are null if rotation isn't configured or is disabled.
	if sec.RotationEnabled != nil && *sec.RotationEnabled {
		e.NextRotationDate = ts(windowEnd(sec.Rules, sec.NextRotation))
		e.LastRotatedDate = ts(sec.LastRotated)
	}
	return e
}

// putNewCurrentLocked stores a value given to CreateSecret or UpdateSecret
// as a new AWSCURRENT version (with the request's token, or a fresh one) and
// returns the response those operations share: ARN, Name and, when a value
// was given, VersionId.
func (s *Server) putNewCurrentLocked(sec *storedSecret, token, str *string, bin []byte) (map[string]any, error) {
	out := map[string]any{"ARN": sec.ARN, "Name": sec.Name}
	if str == nil && bin == nil {
		return out, nil
	}
	tok := newToken()
	if token != nil {
		tok = *token
	}
	if _, err := s.putVersionLocked(sec, tok, str, bin, []string{labelCurrent}, ""); err != nil {
		return nil, err
	}
	out["VersionId"] = tok
	return out, nil
}

func (s *Server) describeSecret(body []byte) (any, error) {
	var in struct{ SecretId *string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, false)
	if err != nil {
		return nil, err
	}
	e := s.entryLocked(sec)
	e.VersionIdsToStages = sec.versionsToStages()
	return e, nil
}

func (s *Server) updateSecret(body []byte) (any, error) {
	var in struct {
		SecretId           *string
		ClientRequestToken *string
		Description        *string
		KmsKeyId           *string
		SecretString       *string
		SecretBinary       []byte
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkValue(in.SecretString, in.SecretBinary); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	out, err := s.putNewCurrentLocked(sec, in.ClientRequestToken, in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	if in.Description != nil {
		sec.Description = in.Description
	}
	if in.KmsKeyId != nil {
		sec.KmsKeyID = in.KmsKeyId
	}
	sec.LastChanged = s.now()
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) deleteSecret(body []byte) (any, error) {
	var in struct {
		SecretId                   *string
		RecoveryWindowInDays       *int64
		ForceDeleteWithoutRecovery *bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if force && in.RecoveryWindowInDays != nil {
		return nil, errorf(excInvalidParameter, "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, errorf(excInvalidParameter, "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, !force)
	if err != nil {
		return nil, err
	}
	now := s.now()
	when := now
	if force {
		delete(s.st.Secrets, sec.ARN)
	} else {
		when = now.Add(time.Duration(days) * 24 * time.Hour)
		sec.Deleted, sec.DeletionDate = now, when
		sec.LastChanged = now
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name, "DeletionDate": epoch(when)}, nil
}

func (s *Server) restoreSecret(body []byte) (any, error) {
	var in struct{ SecretId *string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, false)
	if err != nil {
		return nil, err
	}
	sec.Deleted, sec.DeletionDate = time.Time{}, time.Time{}
	sec.LastChanged = s.now()
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name}, nil
}

func checkTags(tags []tag) error {
	if len(tags) > 50 {
		return errorf(excInvalidParameter, "a secret can have at most 50 tags, got %d", len(tags))
	}
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return errorf(excInvalidParameter, "tag keys must be 1-128 characters and values at most 256; check tag %q", t.Key)
		}
	}
	return nil
}

// mergeTags sets each tag in add on tags, replacing the value of an existing key.
func mergeTags(tags, add []tag) []tag {
	for _, t := range add {
		i := slices.IndexFunc(tags, func(o tag) bool { return o.Key == t.Key })
		if i >= 0 {
			tags[i].Value = t.Value
		} else {
			tags = append(tags, t)
		}
	}
	return tags
}

func (s *Server) tagResource(body []byte) (any, error) {
	var in struct {
		SecretId *string
		Tags     []tag
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	tags := mergeTags(slices.Clone(sec.Tags), in.Tags)
	if len(tags) > 50 {
		return nil, errorf(excLimitExceeded, "a secret can have at most 50 tags; this call would make %d", len(tags))
	}
	sec.Tags = tags
	sec.LastChanged = s.now()
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) untagResource(body []byte) (any, error) {
	var in struct {
		SecretId *string
		TagKeys  []string
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
	sec.Tags = slices.DeleteFunc(sec.Tags, func(t tag) bool { return slices.Contains(in.TagKeys, t.Key) })
	sec.LastChanged = s.now()
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
