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

// CloneTooLong checks the pair's names against a server's limit on user
// names, as count measures a name (bytes on PostgreSQL, characters on
// MySQL and MariaDB). When the clone of username's pair is longer than
// limit it returns the clone, its length and the longest base name that
// fits; ok is false then.
func CloneTooLong(username string, limit int, count func(string) int) (clone string, n, maxBase int, ok bool) {
	_, clone = Pair(username)
	n = count(clone)
	return clone, n, limit - count(CloneSuffix), n <= limit
}

// Bytes counts a name's bytes, as PostgreSQL limits role names.
func Bytes(s string) int { return len(s) }
