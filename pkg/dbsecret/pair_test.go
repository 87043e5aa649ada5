package dbsecret

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPair(t *testing.T) {
	for _, tc := range []struct{ user, base, clone, other string }{
		{"app", "app", "app_clone", "app_clone"},
		{"app_clone", "app", "app_clone", "app"},
		{"app_clone_clone", "app_clone", "app_clone_clone", "app_clone"},
	} {
		base, clone := Pair(tc.user)
		if base != tc.base || clone != tc.clone || Other(tc.user) != tc.other || !InPair(tc.user, tc.other) || InPair(tc.user, "root") {
			t.Errorf("%s: pair %s/%s, other %s; want %s/%s, %s", tc.user, base, clone, Other(tc.user), tc.base, tc.clone, tc.other)
		}
	}
}

func TestCloneTooLong(t *testing.T) {
	for _, tc := range []struct {
		user    string
		limit   int
		ok      bool
		maxBase int
	}{
		{"app", 63, true, 57},
		{strings.Repeat("a", 57), 63, true, 57},
		{strings.Repeat("a", 58), 63, false, 57},
		{strings.Repeat("a", 58) + CloneSuffix, 63, false, 57},
	} {
		clone, n, maxBase, ok := CloneTooLong(tc.user, tc.limit, Bytes)
		if ok != tc.ok || maxBase != tc.maxBase || n != len(clone) || !strings.HasSuffix(clone, CloneSuffix) {
			t.Errorf("CloneTooLong(%d-byte name, %d) = %q, %d, %d, %v; want ok %v, max base %d", len(tc.user), tc.limit, clone, n, maxBase, ok, tc.ok, tc.maxBase)
		}
	}
	// Characters, not bytes, for MySQL: a 2-byte character counts once.
	if _, n, _, ok := CloneTooLong(strings.Repeat("é", 26), 32, utf8.RuneCountInString); !ok || n != 32 {
		t.Errorf("26 two-byte characters and _clone: %d characters, ok %v; want 32, true", n, ok)
	}
}
