// Package password generates passwords locally under the policy of
// Secrets Manager's GetRandomPassword, read from the environment variables
// AWS's rotation templates use. It imports nothing of Rotary, so the engine
// and the local Secrets Manager share it.
package password

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/envflag"
)

// Character classes of GetRandomPassword.
const (
	lowercaseChars   = "abcdefghijklmnopqrstuvwxyz"
	uppercaseChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	numberChars      = "0123456789"
	punctuationChars = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	spaceChar        = " "
)

// ErrPolicy is returned for a password policy that cannot produce a password.
var ErrPolicy = errors.New("impossible password policy")

// Policy is GetRandomPassword's request, generated locally with
// crypto/rand so no password crosses the network before it is stored.
type Policy struct {
	Length                  int    // 1-4096; 0 means 32
	ExcludeCharacters       string // characters never used
	ExcludeNumbers          bool
	ExcludePunctuation      bool
	ExcludeUppercase        bool
	ExcludeLowercase        bool
	IncludeSpace            bool
	RequireEachIncludedType bool
}

// DefaultPolicy is GetRandomPassword's default: 32 characters from
// every class, at least one of each.
func DefaultPolicy() *Policy {
	return &Policy{Length: 32, RequireEachIncludedType: true}
}

// FromEnv reads the environment variables of AWS's rotation
// templates: PASSWORD_LENGTH, EXCLUDE_CHARACTERS, EXCLUDE_NUMBERS,
// EXCLUDE_PUNCTUATION, EXCLUDE_UPPERCASE, EXCLUDE_LOWERCASE and
// REQUIRE_EACH_INCLUDED_TYPE. The policy is checked before it is returned, so
// an impossible one fails at start-up, not in the middle of a rotation.
func FromEnv(getenv func(string) string) (*Policy, error) {
	p := DefaultPolicy()
	if s := strings.TrimSpace(getenv("PASSWORD_LENGTH")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%w: PASSWORD_LENGTH %q is not a whole number; set it to a length from 1 to 4096", ErrPolicy, s)
		}
		if n < 1 {
			return nil, fmt.Errorf("%w: PASSWORD_LENGTH %d is out of range; set it to a length from 1 to 4096", ErrPolicy, n)
		}
		p.Length = n
	}
	p.ExcludeCharacters = getenv("EXCLUDE_CHARACTERS")
	flags := []struct {
		name string
		dst  *bool
	}{
		{"EXCLUDE_NUMBERS", &p.ExcludeNumbers},
		{"EXCLUDE_PUNCTUATION", &p.ExcludePunctuation},
		{"EXCLUDE_UPPERCASE", &p.ExcludeUppercase},
		{"EXCLUDE_LOWERCASE", &p.ExcludeLowercase},
		{"REQUIRE_EACH_INCLUDED_TYPE", &p.RequireEachIncludedType},
	}
	for _, f := range flags {
		v := getenv(f.name)
		if strings.TrimSpace(v) == "" {
			continue
		}
		b, err := envflag.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrPolicy, f.name, err)
		}
		*f.dst = b
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return p, nil
}

// classes returns the character classes the policy draws from, each with the
// excluded characters removed.
func (p *Policy) classes() []string {
	var out []string
	add := func(excluded bool, set string) {
		if excluded {
			return
		}
		var b strings.Builder
		for _, r := range set {
			if !strings.ContainsRune(p.ExcludeCharacters, r) {
				b.WriteRune(r)
			}
		}
		if b.Len() > 0 {
			out = append(out, b.String())
		}
	}
	add(p.ExcludeLowercase, lowercaseChars)
	add(p.ExcludeUppercase, uppercaseChars)
	add(p.ExcludeNumbers, numberChars)
	add(p.ExcludePunctuation, punctuationChars)
	add(!p.IncludeSpace, spaceChar)
	return out
}

// Classes returns how many character classes the policy draws from once
// ExcludeCharacters is applied: with RequireEachIncludedType, a password
// holds at least one character of each, so it needs at least that length.
func (p *Policy) Classes() int { return len(p.classes()) }

func (p *Policy) length() int {
	if p.Length == 0 {
		return 32
	}
	return p.Length
}

// Check reports whether the policy can produce a password.
func (p *Policy) Check() error {
	n := p.length()
	if n < 1 || n > 4096 {
		return fmt.Errorf("%w: PASSWORD_LENGTH %d is out of range; set it to a length from 1 to 4096", ErrPolicy, n)
	}
	cls := p.classes()
	if len(cls) == 0 {
		return fmt.Errorf("%w: every character is excluded; allow at least one class of characters (EXCLUDE_NUMBERS, EXCLUDE_PUNCTUATION, EXCLUDE_UPPERCASE, EXCLUDE_LOWERCASE, EXCLUDE_CHARACTERS)", ErrPolicy)
	}
	if p.RequireEachIncludedType && len(cls) > n {
		return fmt.Errorf("%w: PASSWORD_LENGTH %d is shorter than the %d character classes that REQUIRE_EACH_INCLUDED_TYPE asks for; raise PASSWORD_LENGTH or exclude classes", ErrPolicy, n, len(cls))
	}
	return nil
}

// Generate returns a new password drawn uniformly with crypto/rand. With
// RequireEachIncludedType, every included class appears at least once.
func (p *Policy) Generate() (string, error) {
	if err := p.Check(); err != nil {
		return "", err
	}
	cls := p.classes()
	all := strings.Join(cls, "")
	n := p.length()
	out := make([]byte, n)
	for i := range out {
		c, err := pick(all)
		if err != nil {
			return "", err
		}
		out[i] = c
	}
	if p.RequireEachIncludedType {
		// Put one character of each class at distinct random positions.
		pos, err := randPerm(n)
		if err != nil {
			return "", err
		}
		for i, set := range cls {
			c, err := pick(set)
			if err != nil {
				return "", err
			}
			out[pos[i]] = c
		}
	}
	return string(out), nil
}

func randInt(n int) (int, error) {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, fmt.Errorf("read random bytes: %w", err)
	}
	return int(v.Int64()), nil
}

func pick(set string) (byte, error) {
	i, err := randInt(len(set))
	if err != nil {
		return 0, err
	}
	return set[i], nil
}

// randPerm is a Fisher-Yates shuffle of 0..n-1 with crypto/rand.
func randPerm(n int) ([]int, error) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j, err := randInt(i + 1)
		if err != nil {
			return nil, err
		}
		p[i], p[j] = p[j], p[i]
	}
	return p, nil
}
