package dbsecret

import "strings"

// CloneSuffix names the alternate user of alternating-users rotation: the
// pair is <user> and <user>_clone, as in AWS's templates.
const CloneSuffix = "_clone"

// Pair returns the base user and the clone of the pair username belongs to
// (username may be either).
func Pair(username string) (base, clone string) {
	base = strings.TrimSuffix(username, CloneSuffix)
	return base, CloneName(base)
}

// CloneName returns the clone of base.
func CloneName(base string) string { return base + CloneSuffix }

// Other returns the user of the pair that takes over from username.
func Other(username string) string {
	base, clone := Pair(username)
	if username == clone {
		return base
	}
	return clone
}

// InPair reports whether user is one of the pair of username.
func InPair(username, user string) bool {
	base, clone := Pair(username)
	return user == base || user == clone
}

// BaseName returns the base user of username's pair.
func BaseName(username string) string {
	base, _ := Pair(username)
	return base
}
