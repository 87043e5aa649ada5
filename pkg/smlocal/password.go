package smlocal

import (
	"github.com/rotary-secrets/rotary/pkg/password"
)

const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// passwordRequest is GetRandomPassword's request.
type passwordRequest struct {
	PasswordLength          *int64
	ExcludeCharacters       *string
	ExcludeNumbers          bool
	ExcludePunctuation      bool
	ExcludeUppercase        bool
	ExcludeLowercase        bool
	IncludeSpace            bool
	RequireEachIncludedType *bool
}

// generate validates the request with the API's parameter names in its
// errors, then draws the password with the engine's generator, so that the
// local service and the functions share one implementation of the rules.
func (p passwordRequest) generate() (string, error) {
	n := int64(32)
	if p.PasswordLength != nil {
		n = *p.PasswordLength
	}
	if n < 1 || n > 4096 {
		return "", errorf(excInvalidParameter, "PasswordLength must be from 1 to 4096, got %d", n)
	}
	policy := password.Policy{
		Length:                  int(n),
		ExcludeNumbers:          p.ExcludeNumbers,
		ExcludePunctuation:      p.ExcludePunctuation,
		ExcludeUppercase:        p.ExcludeUppercase,
		ExcludeLowercase:        p.ExcludeLowercase,
		IncludeSpace:            p.IncludeSpace,
		RequireEachIncludedType: p.RequireEachIncludedType == nil || *p.RequireEachIncludedType,
	}
	if p.ExcludeCharacters != nil {
		policy.ExcludeCharacters = *p.ExcludeCharacters
	}
	if classes := policy.Classes(); classes == 0 {
		return "", errorf(excInvalidParameter, "every character is excluded; allow at least one class of characters")
	} else if policy.RequireEachIncludedType && int64(classes) > n {
		return "", errorf(excInvalidParameter, "PasswordLength %d is shorter than the %d character types that RequireEachIncludedType asks for; raise PasswordLength or exclude types", n, classes)
	}
	pw, err := policy.Generate()
	if err != nil {
		return "", &apiError{Type: excInternal, Message: "generate password: " + err.Error()}
	}
	return pw, nil
}
