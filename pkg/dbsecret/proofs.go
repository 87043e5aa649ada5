package dbsecret

import (
	"strconv"
	"sync"
	"time"
)

// CheckedTTL is how long a refused wrong password counts as proof that the
// server checks a user's passwords: a single-user rotation's setSecret and
// testSecret run seconds apart; a server reconfigured to trust in between
// is missed only within this window.
const CheckedTTL = 2 * time.Minute

// maxProofs bounds the Proofs map: a function serving a fleet keeps
// at most this many entries, and starts over when it is full.
const maxProofs = 4096

// Proofs remembers, for one warm function instance, that the server
// refused a wrong password for a user (it checks passwords): a login with
// the pending password that the server refused as a wrong password before
// setSecret set it proves it as well as a random one would, so a single
// user's testSecret need not log in with a random password again.
//
// It keeps no secret: only the server, port, database and user of a proof.
// Every entry expires after CheckedTTL. A nil *Proofs remembers nothing, so
// every check logs in.
type Proofs struct {
	mu      sync.Mutex
	checked map[string]time.Time
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
