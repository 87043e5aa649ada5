package password

import (
	"errors"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFromEnvDefaults(t *testing.T) {
	p, err := FromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		pw, err := p.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 32 {
			t.Fatalf("length %d, want 32", len(pw))
		}
		for _, set := range []string{lowercaseChars, uppercaseChars, numberChars, punctuationChars} {
			if !strings.ContainsAny(pw, set) {
				t.Fatalf("password lacks a character of class %q (REQUIRE_EACH_INCLUDED_TYPE defaults to true)", set[:3])
			}
		}
		if strings.Contains(pw, " ") {
			t.Fatal("password contains a space; GetRandomPassword only includes one with IncludeSpace")
		}
	}
}

func TestPolicyHonoursTemplateVariables(t *testing.T) {
	p, err := FromEnv(envOf(map[string]string{
		"PASSWORD_LENGTH":     "20",
		"EXCLUDE_CHARACTERS":  "/@\"'\\",
		"EXCLUDE_PUNCTUATION": "no",
		"EXCLUDE_NUMBERS":     "Yes",
		"EXCLUDE_UPPERCASE":   "1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		pw, err := p.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 20 {
			t.Fatalf("length %d, want 20", len(pw))
		}
		if strings.ContainsAny(pw, "/@\"'\\"+numberChars+uppercaseChars) {
			t.Fatal("password holds an excluded character")
		}
		if !strings.ContainsAny(pw, lowercaseChars) || !strings.ContainsAny(pw, punctuationChars) {
			t.Fatal("password lacks an included class")
		}
	}
}

func TestPolicyRequireEachIncludedTypeOff(t *testing.T) {
	p, err := FromEnv(envOf(map[string]string{"PASSWORD_LENGTH": "1", "REQUIRE_EACH_INCLUDED_TYPE": "false"}))
	if err != nil {
		t.Fatalf("a one-character password is possible without REQUIRE_EACH_INCLUDED_TYPE: %v", err)
	}
	if pw, _ := p.Generate(); len(pw) != 1 {
		t.Fatalf("length %d, want 1", len(pw))
	}
}

func TestPolicyImpossible(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string // the variable the error must name
	}{
		{"zero length", map[string]string{"PASSWORD_LENGTH": "0"}, "PASSWORD_LENGTH"},
		{"too long", map[string]string{"PASSWORD_LENGTH": "4097"}, "PASSWORD_LENGTH"},
		{"not a number", map[string]string{"PASSWORD_LENGTH": "thirty"}, "PASSWORD_LENGTH"},
		{"every class excluded", map[string]string{"EXCLUDE_NUMBERS": "true", "EXCLUDE_PUNCTUATION": "true", "EXCLUDE_UPPERCASE": "true", "EXCLUDE_LOWERCASE": "true"}, "EXCLUDE_"},
		{"every character excluded", map[string]string{"EXCLUDE_PUNCTUATION": "y", "EXCLUDE_UPPERCASE": "y", "EXCLUDE_LOWERCASE": "y", "EXCLUDE_CHARACTERS": numberChars}, "EXCLUDE_CHARACTERS"},
		{"shorter than classes", map[string]string{"PASSWORD_LENGTH": "3"}, "REQUIRE_EACH_INCLUDED_TYPE"},
		{"bad boolean", map[string]string{"EXCLUDE_NUMBERS": "maybe"}, "EXCLUDE_NUMBERS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromEnv(envOf(c.env))
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("err = %v, want ErrPolicy", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %s", err, c.want)
			}
		})
	}
}
