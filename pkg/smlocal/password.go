package smlocal

import (
	"crypto/rand"
	"math/big"
	"strings"
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

func (p passwordRequest) generate() (string, error) {
	n := int64(32)
	if p.PasswordLength != nil {
		n = *p.PasswordLength
	}
	if n < 1 || n > 4096 {
		return "", errorf(excInvalidParameter, "PasswordLength must be from 1 to 4096, got %d", n)
	}
	excl := ""
	if p.ExcludeCharacters != nil {
		excl = *p.ExcludeCharacters
	}
	var classes []string
	add := func(skip bool, set string) {
		if skip {
			return
		}
		set = strings.Map(func(r rune) rune {
			if strings.ContainsRune(excl, r) {
				return -1
			}
			return r
		}, set)
		if set != "" {
			classes = append(classes, set)
		}
	}
	add(p.ExcludeLowercase, "abcdefghijklmnopqrstuvwxyz")
	add(p.ExcludeUppercase, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	add(p.ExcludeNumbers, "0123456789")
	add(p.ExcludePunctuation, punctuation)
	add(!p.IncludeSpace, " ")
	if len(classes) == 0 {
		return "", errorf(excInvalidParameter, "every character is excluded; allow at least one class of characters")
	}
	each := p.RequireEachIncludedType == nil || *p.RequireEachIncludedType
	if each && int64(len(classes)) > n {
		return "", errorf(excInvalidParameter, "PasswordLength %d is shorter than the %d character types that RequireEachIncludedType asks for; raise PasswordLength or exclude types", n, len(classes))
	}
	all := strings.Join(classes, "")
	out := make([]byte, n)
	for i := range out {
		out[i] = all[randN(len(all))]
	}
	if each {
		// One character of each class at distinct random positions.
		pos := make([]int, n)
		for i := range pos {
			pos[i] = i
		}
		for i := len(pos) - 1; i > 0; i-- {
			j := randN(i + 1)
			pos[i], pos[j] = pos[j], pos[i]
		}
		for i, set := range classes {
			out[pos[i]] = set[randN(len(set))]
		}
	}
	return string(out), nil
}

func randN(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic("smlocal: crypto/rand failed: " + err.Error())
	}
	return int(v.Int64())
}
