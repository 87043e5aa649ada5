package dbsecret

import (
	"context"
	"fmt"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// PreviousCredential reads AWSPREVIOUS through previous (a
// rotation.RevokeRequest's Previous) and returns the credential it held,
// aimed at cur's server, TLS settings and database: AWSPREVIOUS's user and
// password with everything else from cur, since passwords are per user and
// that is where revoke proves the old one refused. It returns nil when there
// is no previous version or it holds cur's very user and password.
//
// A previous version that does not parse, or is for another engine family,
// host or port, is refused (wrapping ErrInvalidSecret), as is one whose user
// allowUser refuses: revoke cannot tell what it held, or cannot prove it
// refused, so it must change nothing.
func PreviousCredential(ctx context.Context, previous func(context.Context) (rotation.Version, bool, error), cur *Secret, allowUser func(username string) error) (*Secret, error) {
	if previous == nil {
		return nil, nil
	}
	v, ok, err := previous(ctx)
	if err != nil {
		return nil, fmt.Errorf("read AWSPREVIOUS: %w", err)
	}
	if !ok {
		return nil, nil
	}
	prev, err := Parse(v.Value)
	if err != nil {
		return nil, fmt.Errorf("AWSPREVIOUS version %s: %w; revoke cannot tell which credential it held, so it changes nothing: fix the version or remove its AWSPREVIOUS label, then revoke again", v.ID, err)
	}
	if prev.Family() != cur.Family() || !strings.EqualFold(prev.Host, cur.Host) || prev.Port != cur.Port {
		return nil, fmt.Errorf("%w: AWSPREVIOUS version %s is for %s %s:%d, but AWSCURRENT is for %s %s:%d; revoke proves old passwords refused only on AWSCURRENT's server, so it changes nothing: revoke the old credential on that server by hand, then remove the AWSPREVIOUS label and revoke again",
			ErrInvalidSecret, v.ID, prev.Engine, prev.Host, prev.Port, cur.Engine, cur.Host, cur.Port)
	}
	if err := allowUser(prev.Username); err != nil {
		return nil, err
	}
	if prev.Username == cur.Username && prev.Password == cur.Password {
		return nil, nil
	}
	probe := *cur
	probe.Username, probe.Password = prev.Username, prev.Password
	return &probe, nil
}
