package dbsecret

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// Try is one credential a login ladder may log in with.
type Try struct {
	// Label names it in errors: "AWSPENDING", "AWSCURRENT", "AWSPREVIOUS".
	Label string
	// Secret returns it; nil with no error means there is none to try. It
	// is called only when the ladder reaches it, so AWSPREVIOUS is read
	// only when the earlier credentials were refused.
	Secret func(ctx context.Context) (*Secret, error)
}

// Known is a Try of a secret already at hand.
func Known(label string, s *Secret) Try {
	return Try{Label: label, Secret: func(context.Context) (*Secret, error) { return s, nil }}
}

// Previous is the Try of AWSPREVIOUS: it reads the version only when
// reached, parses it with parse and refuses it with same (another user or
// server) before any login.
func Previous(read func(context.Context) (rotation.Version, bool, error), parse func(rotation.Version) (*Secret, error), same func(*Secret) error) Try {
	return Try{Label: rotation.LabelPrevious, Secret: func(ctx context.Context) (*Secret, error) {
		if read == nil {
			return nil, nil
		}
		v, ok, err := read(ctx)
		if err != nil {
			return nil, fmt.Errorf("read AWSPREVIOUS: %w", err)
		}
		if !ok {
			return nil, nil
		}
		s, err := parse(v)
		if err != nil {
			return nil, err
		}
		if err := same(s); err != nil {
			return nil, fmt.Errorf("AWSPREVIOUS is for another user or server, so it is not tried: %w", err)
		}
		return s, nil
	}}
}

// Login logs in with the first credential of tries that the server
// accepts and returns the session and the secret that opened it. Every
// login connects the way cur says (its TLS setting), never the way an older
// version says, so an old "ssl": false cannot turn TLS off. It moves on to
// the next credential only when refused says the server refused the last
// one: a network or TLS failure ends the ladder, since another password
// would not help. The error names every credential tried and wraps each
// attempt's error.
func Login[S any](ctx context.Context, cur *Secret, tries []Try, login func(context.Context, *Secret) (S, error), refused func(error) bool) (S, *Secret, error) {
	var (
		zero     S
		attempts []error
		labels   []string
		missing  string
	)
	for _, t := range tries {
		s, err := t.Secret(ctx)
		if err != nil {
			// Not the server refusing a password: the earlier refusals are
			// told, but only this error is wrapped, so that a caller does
			// not take a failed read for a refused login.
			if len(attempts) > 0 {
				return zero, nil, fmt.Errorf("%w (before that: %v)", err, errors.Join(attempts...))
			}
			return zero, nil, err
		}
		if s == nil {
			missing += fmt.Sprintf(" (there is no %s version: the secret has no %s)", strings.ToLower(strings.TrimPrefix(t.Label, "AWS")), t.Label)
			continue
		}
		try := *s
		try.SSL = cur.SSL
		labels = append(labels, t.Label)
		sess, err := login(ctx, &try)
		if err == nil {
			return sess, s, nil
		}
		attempts = append(attempts, fmt.Errorf("%s: %w", t.Label, err))
		if !refused(err) {
			break
		}
	}
	if len(labels) == 0 {
		return zero, nil, fmt.Errorf("no credential to log in with: %w", errors.Join(attempts...))
	}
	return zero, nil, fmt.Errorf("none of the passwords of %s logs in as %q on %s:%d%s: %w", strings.Join(labels, ", "), cur.Username, cur.Host, cur.Port, missing, errors.Join(attempts...))
}
