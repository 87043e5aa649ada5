package rotation

import (
	"errors"
)

// The four steps of a rotation, as Secrets Manager names them in the event.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
	// StepRevoke is not sent by Secrets Manager: the operator CLI invokes
	// the function with it, after a rotation, to invalidate every
	// credential but AWSCURRENT (see Revoker).
	StepRevoke = "revokeSecret"
	// StepProbe is an operator step too: it logs in with the credentials
	// of the secret's recent versions and reports which work, changing
	// nothing (see Prober and Report).
	StepProbe = "probeSecret"
	// StepRecover is the operator step that heals an unfinished rotation
	// or a lockout from what the probes show (see Report.Plan): it never
	// takes a label off the version that holds the working credential.
	StepRecover = "recoverSecret"
	// StepReap is the operator step that drops the secret's expired
	// credentials downstream (see Reaper); the watch function invokes it
	// with the AWSCURRENT token for types whose probe report says they reap.
	StepReap = "reapSecret"
)

// Staging labels the engine reads and moves.
const (
	LabelCurrent  = "AWSCURRENT"
	LabelPending  = "AWSPENDING"
	LabelPrevious = "AWSPREVIOUS"
)

// Event is what Secrets Manager sends a rotation function, once per step.
type Event struct {
	Step               string `json:"Step"`
	SecretID           string `json:"SecretId"`
	ClientRequestToken string `json:"ClientRequestToken"`
	RotationToken      string `json:"RotationToken,omitempty"`
}

// Errors of the event checks and of the steps; match them with errors.Is.
var (
	ErrInvalidEvent     = errors.New("invalid rotation event")
	ErrUnknownStep      = errors.New("unknown rotation step")
	ErrRotationDisabled = errors.New("rotation is not enabled")
	ErrUnknownToken     = errors.New("version is not a version of the secret")
	ErrNotPending       = errors.New("version is not AWSPENDING")
	ErrInvalidSecret    = errors.New("invalid secret value")
	ErrPanic            = errors.New("credential type panicked")
	ErrCannotRevoke     = errors.New("credential type cannot revoke")
	ErrRevokeRefused    = errors.New("revoke refused")
	ErrCannotProbe      = errors.New("credential type cannot probe")
	ErrRecoverRefused   = errors.New("recovery refused")
	ErrCannotReap       = errors.New("credential type cannot reap")
	ErrReapRefused      = errors.New("reap refused")
	// ErrUnchanged is wrapped by a Set error when the type knows it changed
	// nothing downstream (it refused before acting, or the server refused
	// the change): the engine then does not ask a Restorer to put
	// AWSCURRENT's credential back. Any other Set error of a Restorer is
	// followed by a restore.
	ErrUnchanged = errors.New("nothing was changed downstream")

	// ErrRefused is wrapped by a credential type when the server refused a
	// credential: a wrong password, a user that may not log in, a locked
	// account.
	ErrRefused = errors.New("the server refused the credential")
	// ErrLoginDisabled is wrapped (with ErrRefused) when the server refuses
	// the user whatever the password: NOLOGIN, a pg_hba.conf reject rule, a
	// locked account.
	ErrLoginDisabled = errors.New("the server refuses the user whatever the password")
	// ErrUnproven is wrapped when a login worked but the server accepts
	// any password for the user, so the login proves nothing.
	ErrUnproven = errors.New("the server accepts any password for this user")
	// ErrOtherTarget is wrapped when a version names another server or
	// user than the rotation would log in as, so it is not tried.
	ErrOtherTarget = errors.New("the version is for another server or user")
)

// StepError is the error a rotation step returns: it names the step, the
// secret and the version, and its text has every secret value scrubbed.
// Lambda reports it with errorType "StepError".
type StepError struct {
	Step      string
	SecretARN string
	Token     string
	msg       string // scrubbed text of the cause
	cause     error
}

func (e *StepError) Error() string {
	return e.Step + " of secret " + e.SecretARN + " (version " + e.Token + ") failed: " + e.msg
}

// Unwrap returns the cause, so errors.Is finds the sentinel errors above.
// Only Error's text is scrubbed: do not print the cause on its own.
func (e *StepError) Unwrap() error { return e.cause }
