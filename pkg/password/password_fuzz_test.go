package password

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/envflag"
)

// FuzzPolicy reads a password policy from fuzzed environment
// variables, as a function does at start-up, and generates a password with
// it. The seeds are in testdata/fuzz/FuzzPolicy.
//
// Properties:
//   - FromEnv never panics; every error wraps ErrPolicy;
//   - an accepted policy is what the variables say (PASSWORD_LENGTH, the
//     flags as ParseBool reads them, defaults for unset ones) and passes Check;
//   - Generate then succeeds with exactly the policy's length, only
//     characters of the included classes, none of EXCLUDE_CHARACTERS, no
//     space (the variables cannot include it), and with
//     REQUIRE_EACH_INCLUDED_TYPE at least one character of each class.
func FuzzPolicy(f *testing.F) {
	f.Add("32", "", "", "", "", "", "")
	f.Add(" 4 ", `/@"'\`, "yes", "0", "N", "false", "TRUE")
	f.Fuzz(func(t *testing.T, length, exclude, numbers, punct, upper, lower, require string) {
		env := map[string]string{
			"PASSWORD_LENGTH": length, "EXCLUDE_CHARACTERS": exclude, "EXCLUDE_NUMBERS": numbers,
			"EXCLUDE_PUNCTUATION": punct, "EXCLUDE_UPPERCASE": upper, "EXCLUDE_LOWERCASE": lower,
			"REQUIRE_EACH_INCLUDED_TYPE": require,
		}
		p, err := FromEnv(func(k string) string { return env[k] })
		if err != nil {
			if p != nil || !errors.Is(err, ErrPolicy) {
				t.Fatalf("FromEnv: policy %v, error %v not wrapping ErrPolicy", p != nil, err)
			}
			return
		}
		wantLen := 32
		if s := strings.TrimSpace(length); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("PASSWORD_LENGTH %q accepted but not a number", length)
			}
			wantLen = n
		}
		flag := func(v string, def bool) bool {
			if strings.TrimSpace(v) == "" {
				return def
			}
			b, err := envflag.ParseBool(v)
			if err != nil {
				t.Fatalf("flag %q accepted but ParseBool refuses it", v)
			}
			return b
		}
		want := Policy{Length: wantLen, ExcludeCharacters: exclude, ExcludeNumbers: flag(numbers, false),
			ExcludePunctuation: flag(punct, false), ExcludeUppercase: flag(upper, false), ExcludeLowercase: flag(lower, false),
			RequireEachIncludedType: flag(require, true)}
		if *p != want {
			t.Fatalf("policy %+v, want %+v", *p, want)
		}
		if err := p.Check(); err != nil {
			t.Fatalf("an accepted policy fails Check: %v", err)
		}
		pw, err := p.Generate()
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if len(pw) != wantLen {
			t.Fatalf("password of %d bytes, want %d", len(pw), wantLen)
		}
		classes := []struct {
			set      string
			excluded bool
		}{
			{lowercaseChars, p.ExcludeLowercase}, {uppercaseChars, p.ExcludeUppercase},
			{numberChars, p.ExcludeNumbers}, {punctuationChars, p.ExcludePunctuation},
		}
		for i := 0; i < len(pw); i++ {
			c := pw[i]
			if strings.IndexByte(exclude, c) >= 0 {
				t.Fatalf("character %d is in EXCLUDE_CHARACTERS", i)
			}
			ok := false
			for _, cl := range classes {
				ok = ok || !cl.excluded && strings.IndexByte(cl.set, c) >= 0
			}
			if !ok {
				t.Fatalf("character %d (byte %#x) is of no included class", i, c)
			}
		}
		if p.RequireEachIncludedType {
			for _, cl := range classes {
				if cl.excluded {
					continue
				}
				avail := strings.Map(func(r rune) rune {
					if strings.ContainsRune(exclude, r) {
						return -1
					}
					return r
				}, cl.set)
				if avail != "" && !strings.ContainsAny(pw, avail) {
					t.Fatalf("no character of the class %q, which REQUIRE_EACH_INCLUDED_TYPE asks for", cl.set[:3])
				}
			}
		}
	})
}
