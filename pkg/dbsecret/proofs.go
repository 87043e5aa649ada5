package dbsecret

import (
	"strconv"
	"sync"
	"time"
)

// ProofTTL is how long a warm function instance trusts what a login proved
// (see Proofs): long enough for the four steps of a rotation and its
// retries, short enough that a reconfigured server is proven again.
const ProofTTL = 15 * time.Minute

// CheckedTTL is how long a refused wrong password counts as proof that the
// server checks a user's passwords: a single-user rotation's setSecret and
// testSecret run seconds apart; a server reconfigured to trust in between
// is missed only within this window.
const CheckedTTL = 2 * time.Minute

// maxProofs bounds each of the Proofs maps: a function serving a fleet keeps
// at most this many entries, and starts over when it is full.
const maxProofs = 4096

// Proofs remembers, for one warm function instance, facts that a login
// proved, so that the steps of a rotation do not log in again to prove them:
//
//   - that the server refused a wrong password for a user (checked
//     passwords): a login with the pending password that the server
//     refused as a wrong password before setSecret set it proves it as well
//     as a random one would;
//   - that a version of a secret logged in (testSecret proved it), so that
//     the next rotation's setSecret need not log in with it again to prove
//     that whoever wrote AWSCURRENT knew the password: a version's value
//     never changes.
//
// It keeps no secret: only the server, port, database and user of a proof,
// and a secret's ARN and version ID. Every entry expires after ProofTTL. A
// nil *Proofs remembers nothing, so every check logs in.
type Proofs struct {
	mu       sync.Mutex
	checked  map[string]time.Time
	versions map[string]versionProof
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewProofs returns an empty cache of proofs.
func NewProofs() *Proofs { return &Proofs{} }

func (p *Proofs) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func checkedKey(s *Secret) string {
	return s.Engine + "\x00" + s.Host + "\x00" + strconv.Itoa(s.Port) + "\x00" + s.Database() + "\x00" + s.Username + "\x00" + strconv.FormatBool(s.PlaintextAllowed())
}

func (p *Proofs) get(m map[string]time.Time, k string, ttl time.Duration) bool {
	at, ok := m[k]
	return ok && p.now().Sub(at) < ttl
}

func (p *Proofs) put(m *map[string]time.Time, k string) {
	if *m == nil || len(*m) >= maxProofs {
		*m = make(map[string]time.Time)
	}
	(*m)[k] = p.now()
}

// PasswordsChecked reports whether the server of s refused a wrong password
// for s's user (on s's database and TLS setting) within CheckedTTL.
func (p *Proofs) PasswordsChecked(s *Secret) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.get(p.checked, checkedKey(s), CheckedTTL)
}

// SetPasswordsChecked records that the server of s refused a password that
// was not s's user's password.
func (p *Proofs) SetPasswordsChecked(s *Secret) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.put(&p.checked, checkedKey(s))
}

type versionProof struct {
	at   time.Time
	note string
}

// VersionLoggedIn reports whether version id of secret arn logged in (and
// its server checked the password) within ProofTTL, and the note recorded
// with it (such as the account the server matched; never a secret).
func (p *Proofs) VersionLoggedIn(arn, id string) (note string, ok bool) {
	if p == nil || arn == "" || id == "" {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.versions[arn+"\x00"+id]
	if !ok || p.now().Sub(v.at) >= ProofTTL {
		return "", false
	}
	return v.note, true
}

// SetVersionLoggedIn records that version id of secret arn logged in on a
// server that checks passwords, with a note that is not a secret.
func (p *Proofs) SetVersionLoggedIn(arn, id, note string) {
	if p == nil || arn == "" || id == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.versions == nil || len(p.versions) >= maxProofs {
		p.versions = make(map[string]versionProof)
	}
	p.versions[arn+"\x00"+id] = versionProof{at: p.now(), note: note}
}
