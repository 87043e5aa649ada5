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
