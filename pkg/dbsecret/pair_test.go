package dbsecret

import "testing"

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
