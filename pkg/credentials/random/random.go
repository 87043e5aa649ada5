// Package random is the credential type for secrets with no downstream
// system: API keys, tokens and signing keys whose new value only has to be
// random and stored. Which fields rotate, and their length and alphabet,
// are configured; every other field is kept.
package random

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// Alphabets a field can be drawn from. "password" uses the function's
// password policy (PASSWORD_LENGTH, EXCLUDE_* ...), like AWS's templates.
const (
	AlphabetPassword  = "password"
	AlphabetAlnum     = "alnum"
	AlphabetHex       = "hex"
	AlphabetBase64URL = "base64url"
	AlphabetNumeric   = "numeric"
)

var alphabets = map[string]string{
	AlphabetAlnum:     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	AlphabetHex:       "0123456789abcdef",
	AlphabetBase64URL: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
	AlphabetNumeric:   "0123456789",
}

// Field says how one field of the secret rotates.
type Field struct {
	Name string
	// Length is the number of characters. For AlphabetPassword, 0 means
	// the password policy's length (PASSWORD_LENGTH).
	Length   int
	Alphabet string // one of the Alphabet constants
}

// Config is the random type's configuration.
type Config struct {
	Fields []Field
}

// Defaults of the environment variables.
const (
	DefaultFields   = "password"
	DefaultLength   = 32
	DefaultAlphabet = AlphabetPassword
	maxLength       = 4096
)

// ConfigFromEnv reads ROTATE_FIELDS (comma-separated; each entry is
// name[:length[:alphabet]]), RANDOM_LENGTH (default length, 32) and
// RANDOM_ALPHABET (default alphabet, "password"). A field of the password
// alphabet follows the password policy (PASSWORD_LENGTH, EXCLUDE_*, ...);
// its length is the entry's if it gives one, else RANDOM_LENGTH if set, else
// PASSWORD_LENGTH. The policy is checked here, so that an impossible length
// stops the function at start rather than fail every rotation.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	defLen := DefaultLength
	s := strings.TrimSpace(getenv("RANDOM_LENGTH"))
	defLenSet := s != ""
	if defLenSet {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLength {
			return Config{}, fmt.Errorf("RANDOM_LENGTH %q: set it to a whole number from 1 to %d", s, maxLength)
		}
		defLen = n
	}
	defAlpha := DefaultAlphabet
	if s := strings.TrimSpace(getenv("RANDOM_ALPHABET")); s != "" {
		if err := checkAlphabet(s); err != nil {
			return Config{}, fmt.Errorf("RANDOM_ALPHABET: %w", err)
		}
		defAlpha = s
	}
	spec := getenv("ROTATE_FIELDS")
	if strings.TrimSpace(spec) == "" {
		spec = DefaultFields
	}
	var (
		cfg    Config
		seen   = map[string]bool{}
		policy *password.Policy // read when a field needs it
		err    error
	)
	for _, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		f := Field{Name: parts[0], Length: defLen, Alphabet: defAlpha}
		if f.Name == "" || len(parts) > 3 {
			return Config{}, fmt.Errorf("ROTATE_FIELDS entry %q: write name[:length[:alphabet]], e.g. apiKey:40:alnum", entry)
		}
		explicitLength := len(parts) > 1 && parts[1] != ""
		if explicitLength {
			n, err := strconv.Atoi(parts[1])
			if err != nil || n < 1 || n > maxLength {
				return Config{}, fmt.Errorf("ROTATE_FIELDS entry %q: length must be a whole number from 1 to %d", entry, maxLength)
			}
			f.Length = n
		}
		if len(parts) > 2 {
			if err := checkAlphabet(parts[2]); err != nil {
				return Config{}, fmt.Errorf("ROTATE_FIELDS entry %q: %w", entry, err)
			}
			f.Alphabet = parts[2]
		}
		if f.Alphabet == AlphabetPassword {
			if policy == nil {
				if policy, err = password.FromEnv(getenv); err != nil {
					return Config{}, err
				}
			}
			if !explicitLength && !defLenSet {
				f.Length = policy.Length // PASSWORD_LENGTH
			} else {
				p := *policy
				p.Length = f.Length
				if err := p.Check(); err != nil {
					return Config{}, fmt.Errorf("ROTATE_FIELDS entry %q (length from the entry or RANDOM_LENGTH): %w", entry, err)
				}
			}
		}
		if seen[f.Name] {
			return Config{}, fmt.Errorf("ROTATE_FIELDS names field %q twice; name each field once", f.Name)
		}
		seen[f.Name] = true
		cfg.Fields = append(cfg.Fields, f)
	}
	if len(cfg.Fields) == 0 {
		return Config{}, errors.New("ROTATE_FIELDS names no field; name at least one, e.g. apiKey")
	}
	return cfg, nil
}

func checkAlphabet(a string) error {
	if a == AlphabetPassword {
		return nil
	}
	if _, ok := alphabets[a]; !ok {
		return fmt.Errorf("unknown alphabet %q; use password, alnum, hex, base64url or numeric", a)
	}
	return nil
}

// Random rotates random fields. It implements rotation.Credential.
type Random struct {
	cfg Config
}

var (
	_ rotation.Credential = (*Random)(nil)
	_ rotation.Revoker    = (*Random)(nil)
	_ rotation.Prober     = (*Random)(nil)
)

// New returns the random credential type.
func New(cfg Config) (*Random, error) {
	if len(cfg.Fields) == 0 {
		return nil, errors.New("random: no field to rotate")
	}
	for _, f := range cfg.Fields {
		if err := checkAlphabet(f.Alphabet); err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Name, err)
		}
		lo := 1
		if f.Alphabet == AlphabetPassword {
			lo = 0 // the password policy's length
		}
		if f.Length < lo || f.Length > maxLength {
			return nil, fmt.Errorf("field %q: length %d is out of range %d-%d; set Field.Length in that range", f.Name, f.Length, lo, maxLength)
		}
	}
	return &Random{cfg: cfg}, nil
}

// Validate requires a JSON object whose rotated fields, where present, are strings.
func (r *Random) Validate(_ context.Context, v rotation.Version) error {
	fields, err := v.Fields()
	if err != nil {
		return fmt.Errorf("%w; store the secret as a JSON object such as {\"%s\": \"...\"}", err, r.cfg.Fields[0].Name)
	}
	for _, f := range r.cfg.Fields {
		raw, ok := fields[f.Name]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return fmt.Errorf("field %q must be a JSON string; store it in quotes, or remove it from ROTATE_FIELDS if it is not a random value", f.Name)
		}
	}
	return nil
}

// Generate draws a new value for every configured field.
func (r *Random) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	changes := make(map[string]any, len(r.cfg.Fields))
	for _, f := range r.cfg.Fields {
		v, err := generate(f, req.Passwords)
		if err != nil {
			return rotation.GenerateResponse{}, fmt.Errorf("field %q: %w", f.Name, err)
		}
		changes[f.Name] = v
	}
	return rotation.GenerateResponse{Changes: changes}, nil
}

func generate(f Field, p *password.Policy) (string, error) {
	if f.Alphabet == AlphabetPassword {
		if f.Length > 0 {
			q := *p
			q.Length = f.Length
			p = &q
		}
		return p.Generate()
	}
	set := alphabets[f.Alphabet]
	out := make([]byte, f.Length)
	max := big.NewInt(int64(len(set)))
	for i := range out {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		out[i] = set[n.Int64()]
	}
	return string(out), nil
}

// Standalone marks the type as having no downstream system
// (rotation.Standalone): its probe cannot prove an old value refused.
func (r *Random) Standalone() {}

// Set has nothing to do: there is no downstream system.
func (r *Random) Set(context.Context, rotation.SetRequest) error { return nil }

// Test checks that every rotated field of the pending value is present and
// drawn from its alphabet at its length.
func (r *Random) Test(_ context.Context, req rotation.TestRequest) error {
	var fields map[string]any
	if err := json.Unmarshal([]byte(req.Pending.Value), &fields); err != nil || fields == nil {
		return fmt.Errorf("version %s: secret value is not a JSON object", req.Pending.ID)
	}
	return r.checkFields(fields)
}

func (r *Random) checkFields(fields map[string]any) error {
	for _, f := range r.cfg.Fields {
		raw, ok := fields[f.Name]
		if !ok {
			return fmt.Errorf("field %q is missing", f.Name)
		}
		s, ok := raw.(string)
		if !ok || s == "" {
			return fmt.Errorf("field %q must be a non-empty string", f.Name)
		}
		if f.Alphabet == AlphabetPassword && f.Length == 0 {
			continue // the policy's length, which the type does not know
		}
		if len(s) != f.Length {
			return fmt.Errorf("field %q has %d characters, want %d", f.Name, len(s), f.Length)
		}
		if f.Alphabet == AlphabetPassword {
			continue
		}
		for _, c := range s {
			if !strings.ContainsRune(alphabets[f.Alphabet], c) {
				return fmt.Errorf("field %q has a character outside the %s alphabet", f.Name, f.Alphabet)
			}
		}
	}
	return nil
}

// Revoke has nothing to do: the rotation that precedes it replaced every
// rotated field, and no system holds the old values but their consumers,
// which read AWSCURRENT.
func (r *Random) Revoke(context.Context, rotation.RevokeRequest) error { return nil }

// Probe checks that the version is a value consumers can use: a JSON object
// whose rotated fields, where present, are non-empty strings, as Validate
// accepts AWSCURRENT for a rotation. With no downstream system, a
// well-formed value is as valid as it gets, so recovery can always keep
// AWSCURRENT and clear an unfinished rotation. It does not demand the
// length and alphabet this function generates (Test does, of the pending
// value): AWSCURRENT is often the value a person stored before the first
// rotation, or one generated under an earlier ROTATE_FIELDS.
func (r *Random) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	if err := r.Validate(ctx, req.Version); err != nil {
		return fmt.Errorf("%w: version %s: %w", rotation.ErrInvalidSecret, req.Version.ID, err)
	}
	var fields map[string]any
	_ = json.Unmarshal([]byte(req.Version.Value), &fields)
	for _, f := range r.cfg.Fields {
		if s, ok := fields[f.Name].(string); ok && s == "" {
			return fmt.Errorf("%w: version %s: field %q is empty", rotation.ErrInvalidSecret, req.Version.ID, f.Name)
		}
	}
	return nil
}
