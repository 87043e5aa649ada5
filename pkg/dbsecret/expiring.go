package dbsecret

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Expiring users are login users that Rotary creates with exactly a base
// user's privileges and a lifetime: one per rotation (the expiring-user
// types) or one per request (the issuer). Their names and the marker that
// proves Rotary created them are the same on every engine; the engines'
// packages create, list and drop them.

// ExpiringSuffixLen is how much longer an expiring user's name is than its
// base user's: "_", the UTC creation time as yyMMddHHmmss, "_" and four
// random characters.
const ExpiringSuffixLen = 1 + len(expiringTimeLayout) + 1 + expiringRandomLen

const (
	expiringTimeLayout = "060102150405"
	expiringRandomLen  = 4
	// expiringAlphabet is lower-case base32: no character a server folds,
	// quotes or treats as a wildcard.
	expiringAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
)

// MarkerKind is the value of the marker's "rotary" field.
const MarkerKind = "expiring-user"

// Origins of expiring users, in the marker's "origin" field.
const (
	// OriginRotationPrefix + the secret's ARN: a user made by a rotation of that secret.
	OriginRotationPrefix = "rotation:"
	// OriginIssuedPrefix + the role's name: a user handed out by the issuer.
	OriginIssuedPrefix = "issued:"
)

// OriginRotation is the origin of the users a rotation of secretARN creates.
func OriginRotation(secretARN string) string { return OriginRotationPrefix + secretARN }

// OriginIssued is the origin of the users the issuer creates for role.
func OriginIssued(role string) string { return OriginIssuedPrefix + role }

// Reapable reports whether the reaper of the secret whose rotations make
// users of origin (OriginRotation of its ARN) may drop u once it has
// expired: u is of that origin, or issued (an issued user belongs to no
// secret, and is dead once expired). Another secret's users are not: that
// secret's AWSCURRENT may be one of them, expired because its rotations
// failed, and only its own reaper, which keeps its AWSCURRENT, may drop it.
func Reapable(u ExpiringUser, origin string) bool {
	return (origin != "" && u.Origin == origin) || strings.HasPrefix(u.Origin, OriginIssuedPrefix)
}

// RetireBase decides whether a revoke of the secret whose rotations make
// users of origin gives the base user a new password nobody stores (so the
// password the secret began with stops working), and says why in a note
// for the log. The base user's password may be held by another secret of
// the same base, which the revoke would lock out, so it is retired only
// when AWSCURRENT's user (curUser) is one of this secret's expiring users
// (the secret has moved off the base's password) and no user of another
// secret's rotations (rotation:<another ARN>) is among users (the base's
// marked users): such a secret may still hold the base's password, as
// AWSCURRENT (its rotation unfinished) or to fall back on.
//
// A secret of the same base that was never rotated leaves no trace on the
// server: docs/expiring-users.md tells to rotate every secret of a shared
// base before revoking one.
func RetireBase(base, curUser, origin string, users []ExpiringUser) (retire bool, note string) {
	keep := "the base user " + strconvQuote(base) + "'s password was left as it is: "
	if curUser == base {
		return false, keep + "AWSCURRENT is the base user itself"
	}
	mine := false
	var others []string
	for _, u := range users {
		if u.Name == curUser && u.Origin == origin {
			mine = true
		}
		if strings.HasPrefix(u.Origin, OriginRotationPrefix) && u.Origin != origin && !containsString(others, strings.TrimPrefix(u.Origin, OriginRotationPrefix)) {
			others = append(others, strings.TrimPrefix(u.Origin, OriginRotationPrefix))
		}
	}
	switch {
	case !mine:
		return false, keep + "AWSCURRENT's user " + strconvQuote(curUser) + " was not made by this secret's rotations"
	case len(others) > 0:
		return false, keep + "other secrets rotate users of the same base (" + strings.Join(others, ", ") + ") and may still hold it; when none does, give the base user a new password by hand"
	}
	return true, "the base user " + strconvQuote(base) + "'s password was retired: it now has a random password nobody stores, and its sessions were ended unless ROTARY_REVOKE_KEEP_SESSIONS is set"
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ErrNameTooLong is wrapped when a base user's name leaves no room for the
// suffix of its expiring users under a server's limit.
var ErrNameTooLong = errors.New("base user name too long for expiring users")

// Marker is what Rotary records with every expiring user it creates (a role
// comment on PostgreSQL, a row of the marker table on MySQL and MariaDB):
// the proof that Rotary made the user, the base user whose privileges it
// has, who asked for it, and when it expires. Its JSON form is
//
//	{"rotary":"expiring-user","base":"app","origin":"rotation:arn:...","expiresAt":"2026-01-02T15:04:05Z"}
type Marker struct {
	Rotary    string    `json:"rotary"`
	Base      string    `json:"base"`
	Origin    string    `json:"origin"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// NewMarker returns the marker of a user of base for origin, expiring at
// expiresAt (kept to the second, in UTC).
func NewMarker(base, origin string, expiresAt time.Time) Marker {
	return Marker{Rotary: MarkerKind, Base: base, Origin: origin, ExpiresAt: expiresAt.UTC().Truncate(time.Second)}
}

// JSON returns the marker's JSON form.
func (m Marker) JSON() string {
	b, _ := json.Marshal(m) // cannot fail: strings and a time
	return string(b)
}

// ParseMarker reads a marker's JSON form. It fails for anything that is
// not a marker of an expiring user (another comment, say).
func ParseMarker(s string) (Marker, error) {
	var m Marker
	if err := json.Unmarshal([]byte(s), &m); err != nil || m.Rotary != MarkerKind || m.Base == "" || m.ExpiresAt.IsZero() {
		return Marker{}, errors.New("not a Rotary expiring-user marker")
	}
	return m, nil
}

// ExpiringUser is one expiring user as found on a server: it has Rotary's
// marker and a name of the base user's family.
type ExpiringUser struct {
	Name string
	// Host is the account's host on MySQL and MariaDB (the base user's);
	// empty on PostgreSQL.
	Host      string
	Base      string
	Origin    string
	CreatedAt time.Time // from the name
	ExpiresAt time.Time // from the marker (on PostgreSQL, also the role's VALID UNTIL)
}

// Expired reports whether the user's expiry is at or before now.
func (u ExpiringUser) Expired(now time.Time) bool { return !u.ExpiresAt.After(now) }

// ExpiringName returns a new name for a user of base created at created:
// base + "_" + yyMMddHHmmss (UTC) + "_" + four random characters. limit is
// the server's limit on user names as count measures them (bytes on
// PostgreSQL, characters on MySQL and MariaDB); a base too long for it is
// refused with ErrNameTooLong, naming the longest base that fits.
func ExpiringName(base string, created time.Time, limit int, count func(string) int) (string, error) {
	if base == "" {
		return "", fmt.Errorf("%w: the base user name is empty", ErrInvalidSecret)
	}
	if n := count(base) + ExpiringSuffixLen; n > limit {
		return "", fmt.Errorf("%w: the expiring users of %q would have names of %d, over the server's limit of %d; use a base user name of at most %d",
			ErrNameTooLong, base, n, limit, limit-ExpiringSuffixLen)
	}
	var r [expiringRandomLen]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("generate a user name: %w", err)
	}
	for i := range r {
		r[i] = expiringAlphabet[int(r[i])%len(expiringAlphabet)]
	}
	return base + "_" + created.UTC().Format(expiringTimeLayout) + "_" + string(r[:]), nil
}

// ParseExpiringName splits a name made by ExpiringName into its base user
// and creation time; ok is false for any other name.
func ParseExpiringName(name string) (base string, created time.Time, ok bool) {
	if len(name) <= ExpiringSuffixLen {
		return "", time.Time{}, false
	}
	suffix := name[len(name)-ExpiringSuffixLen:]
	stamp, random := suffix[1:1+len(expiringTimeLayout)], suffix[2+len(expiringTimeLayout):]
	if suffix[0] != '_' || suffix[1+len(expiringTimeLayout)] != '_' {
		return "", time.Time{}, false
	}
	for _, c := range stamp {
		if c < '0' || c > '9' {
			return "", time.Time{}, false
		}
	}
	for _, c := range random {
		if !strings.ContainsRune(expiringAlphabet, c) {
			return "", time.Time{}, false
		}
	}
	t, err := time.Parse(expiringTimeLayout, stamp)
	if err != nil {
		return "", time.Time{}, false
	}
	return name[:len(name)-ExpiringSuffixLen], t, true
}

// IsExpiringUserOf reports whether name is a name ExpiringName makes for base.
func IsExpiringUserOf(base, name string) bool {
	b, _, ok := ParseExpiringName(name)
	return ok && b == base
}

// FieldExpiresAt is the field of an expiring user's secret that holds its
// expiry, RFC 3339.
const FieldExpiresAt = "expiresAt"

// ExpiresAt reads the optional field expiresAt (RFC 3339); zero when absent.
func (f Fields) ExpiresAt() (time.Time, error) {
	s, err := f.Optional(FieldExpiresAt)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, f.Error(FieldExpiresAt, "is %q, not an RFC 3339 time such as 2026-01-02T15:04:05Z; remove the version or fix the field", s)
	}
	return t.UTC(), nil
}

// ExpiringBase returns the base user of an expiring-users secret's
// username: the base itself (the secret's initial value), or the base of an
// expiring user's name.
func ExpiringBase(username string) string {
	if b, _, ok := ParseExpiringName(username); ok {
		return b
	}
	return username
}

// ExpiringVersion is a parsed version of an expiring-users secret, for both
// engines: the database secret, its base user, and its expiry (zero for the
// base user's own value).
type ExpiringVersion struct {
	*Secret
	Base      string
	ExpiresAt time.Time
}

// NewExpiringVersion reads what an expiring-users secret holds beyond the
// database secret s (parsed from fields by the engine): the base user, the
// expiresAt and the masterarn every such rotation needs. Errors wrap
// invalid, the engine's sentinel, and never show the password.
func NewExpiringVersion(s *Secret, fields map[string]json.RawMessage, invalid error) (*ExpiringVersion, error) {
	e := &ExpiringVersion{Secret: s, Base: ExpiringBase(s.Username)}
	var err error
	if e.ExpiresAt, err = (Fields{M: fields, Err: invalid}).ExpiresAt(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(s.MasterARN) == "" {
		return nil, fmt.Errorf("%w: field \"masterarn\" is missing; expiring-users rotation needs the ARN of the admin secret that creates the users in masterarn", invalid)
	}
	return e, nil
}
