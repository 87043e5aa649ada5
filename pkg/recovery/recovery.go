// Package recovery diagnoses a secret from probes of its versions'
// credentials and plans what heals it: the one decision that the rotation
// engine's operator steps (probeSecret, recoverSecret), the CLI and the
// watch share. It holds no secret value and imports nothing of the engine.
package recovery

import (
	"fmt"
	"strings"
	"time"
)

// Outcomes of probing one version's credential.
const (
	OutcomeLogsIn  = "logs-in" // the server accepted the credential and checks passwords
	OutcomeRefused = "refused" // the server refused it (rotation.ErrRefused)
	// OutcomeLoginDisabled: the server refuses the user whatever the
	// password: NOLOGIN, a pg_hba.conf reject rule, a locked account
	// (rotation.ErrLoginDisabled).
	OutcomeLoginDisabled = "login-disabled"
	OutcomeUnproven      = "unproven"     // it logs in, but so would any password (rotation.ErrUnproven)
	OutcomeUnreachable   = "unreachable"  // no answer from the server: network, DNS, timeout
	OutcomeTLS           = "tls"          // the TLS handshake or certificate check failed
	OutcomeOtherTarget   = "other-target" // the version names another server or user (rotation.ErrOtherTarget)
	OutcomeInvalid       = "invalid"      // the value is not a valid secret of this type
	OutcomeEmpty         = "empty"        // the version has no value yet (a rotation's placeholder)
	OutcomeError         = "error"        // anything else; Error says what
)

// States of a secret, as a probe diagnoses them.
const (
	// StateHealthy: AWSCURRENT logs in and no rotation is unfinished.
	StateHealthy = "healthy"
	// StateStuck: AWSPENDING is on another version, but AWSCURRENT logs in.
	StateStuck = "stuck"
	// StateLockedOut: AWSCURRENT is refused, but another version of the
	// secret logs in: applications reading AWSCURRENT cannot log in, and
	// recoverSecret can make the working version current.
	StateLockedOut = "locked-out"
	// StateDrifted: AWSCURRENT is refused and no version of the secret
	// logs in: the credential was changed (or the user dropped) downstream.
	StateDrifted = "drifted"
	// StateLoginDisabled: the server refuses AWSCURRENT's user whatever the
	// password (NOLOGIN, a pg_hba.conf reject rule, a locked account), and
	// no other version logs in.
	StateLoginDisabled = "login-disabled"
	// StateUnknown: the probes could not tell (the server is unreachable,
	// TLS fails, the server accepts any password, or a single-user secret
	// has two working credentials, as while a rotation is setting one).
	StateUnknown = "unknown"
)

// Plans: what recoverSecret does for a state.
const (
	PlanNone         = "none"          // change nothing
	PlanClearPending = "clear-pending" // remove AWSPENDING from the unfinished rotation's version
	PlanComplete     = "complete"      // test the pending version, then make it AWSCURRENT
	PlanRestore      = "restore"       // make an older version that logs in AWSCURRENT again
)

// Report is the answer of the probeSecret and recoverSecret steps (the
// Lambda function's response). It never holds a secret value.
type Report struct {
	SecretARN string `json:"secretArn"`
	// SingleCredential is true for types that keep one valid credential at
	// a time (Restorers): every version but the live one should be refused.
	SingleCredential bool `json:"singleCredential"`
	// State is the diagnosis (StateHealthy, ...), Summary says it in a
	// sentence, and Plan is what recoverSecret does about it, acting on
	// PlanVersion.
	State       string `json:"state"`
	Summary     string `json:"summary"`
	Plan        string `json:"plan"`
	PlanVersion string `json:"planVersion,omitempty"`
	// CurrentVersion and PendingVersion hold the labels when the probe ran
	// (recoverSecret: after it acted). PendingVersion is empty unless
	// AWSPENDING is on another version than AWSCURRENT.
	CurrentVersion string `json:"currentVersion,omitempty"`
	PendingVersion string `json:"pendingVersion,omitempty"`
	// StillValid lists versions other than AWSCURRENT and AWSPENDING whose
	// credential logs in. For a single-credential type it should be empty.
	StillValid []string `json:"stillValid,omitempty"`
	// Versions are the probed versions: AWSCURRENT first, then AWSPENDING,
	// AWSPREVIOUS, the step's token and the newest unlabeled versions
	// created after AWSCURRENT's.
	Versions []VersionProbe `json:"versions"`
	// Action says what recoverSecret did (PlanNone for nothing); Changed
	// is true when it moved a label. Empty for probeSecret.
	Action  string `json:"action,omitempty"`
	Changed bool   `json:"changed"`
	// Reaper is set by probeSecret when the type drops its expired
	// credentials (expiring users): the watch then invokes reapSecret.
	Reaper bool `json:"reaper,omitempty"`
	// NothingDownstream is set for types with no downstream system
	// (random secrets): a version "logs in" when it is well-formed, so a
	// probe cannot prove an old one refused.
	NothingDownstream bool `json:"nothingDownstream,omitempty"`
	// Reaped names the credentials reapSecret dropped (user names), and
	// ReapKept counts those it left; set only by reapSecret, whose Action
	// is "reap".
	Reaped   []string `json:"reaped,omitempty"`
	ReapKept int      `json:"reapKept,omitempty"`
}

// VersionProbe is the result of trying one version's credential.
type VersionProbe struct {
	VersionID string     `json:"versionId"`
	Labels    []string   `json:"labels"`
	Created   *time.Time `json:"created,omitempty"`
	Outcome   string     `json:"outcome"`
	// Error says why the credential did not log in; it is scrubbed.
	Error string `json:"error,omitempty"`
}

// Version returns the probe of a version, if it was probed.
func (r *Report) Version(id string) (VersionProbe, bool) {
	for _, v := range r.Versions {
		if v.VersionID == id {
			return v, true
		}
	}
	return VersionProbe{}, false
}

// Decide works out the state and the plan from the probes: the one place
// where recovery is decided, so that the CLI, the watch and the function
// agree. It never plans to take a label off the version whose credential
// logs in.
func Decide(r *Report) {
	cur, _ := r.Version(r.CurrentVersion)
	var pend VersionProbe
	if r.PendingVersion != "" {
		pend, _ = r.Version(r.PendingVersion)
	}
	r.StillValid = nil
	var working []VersionProbe // versions other than AWSCURRENT and AWSPENDING that log in
	for _, v := range r.Versions {
		if v.VersionID != r.CurrentVersion && v.VersionID != r.PendingVersion && v.Outcome == OutcomeLogsIn {
			r.StillValid = append(r.StillValid, v.VersionID)
			working = append(working, v)
		}
	}
	refused := cur.Outcome == OutcomeRefused || cur.Outcome == OutcomeLoginDisabled
	r.Plan, r.PlanVersion = PlanNone, ""
	switch {
	case r.SingleCredential && cur.Outcome == OutcomeLogsIn && pend.Outcome == OutcomeLogsIn:
		// One password per user, yet two work: the server's credential is
		// changing under the probes (a rotation's setSecret running now),
		// so neither may lose its label.
		r.State = StateUnknown
		r.Summary = fmt.Sprintf("both AWSCURRENT and AWSPENDING (version %s) log in, which a single-user secret allows only while a rotation is changing the password: a rotation is probably running; look again when it has ended", r.PendingVersion)
	case cur.Outcome == OutcomeLogsIn && r.PendingVersion == "":
		r.State = StateHealthy
		r.Summary = "AWSCURRENT logs in and no rotation is unfinished"
		if r.SingleCredential && len(r.StillValid) > 0 {
			r.Summary += fmt.Sprintf("; but %s of an older version still logs in, which a single-user secret should not allow: revoke the secret", plural(len(r.StillValid), "the credential", "the credentials"))
		}
	case cur.Outcome == OutcomeLogsIn:
		r.State = StateStuck
		r.Plan, r.PlanVersion = PlanClearPending, r.PendingVersion
		r.Summary = fmt.Sprintf("a rotation is unfinished (AWSPENDING is on version %s) but AWSCURRENT logs in: removing AWSPENDING from it loses nothing", r.PendingVersion)
	case refused && pend.Outcome == OutcomeLogsIn:
		r.State = StateLockedOut
		r.Plan, r.PlanVersion = PlanComplete, r.PendingVersion
		r.Summary = fmt.Sprintf("AWSCURRENT is refused and only the unfinished rotation's version %s (AWSPENDING) logs in: the rotation changed the credential downstream but did not finish; completing it (testSecret, then finishSecret) makes the working credential current", r.PendingVersion)
	case refused && len(working) > 0:
		w := working[0] // AWSPREVIOUS, then the newest unlabeled versions
		r.State = StateLockedOut
		r.Plan, r.PlanVersion = PlanRestore, w.VersionID
		what := "the unlabeled version " + w.VersionID
		if len(w.Labels) > 0 {
			what = fmt.Sprintf("version %s (%s)", w.VersionID, strings.Join(w.Labels, ","))
		}
		r.Summary = fmt.Sprintf("AWSCURRENT is refused but %s logs in: the credential downstream is that version's; making it AWSCURRENT again lets applications log in", what)
	case cur.Outcome == OutcomeLoginDisabled:
		r.State = StateLoginDisabled
		r.Summary = "the server refuses AWSCURRENT's user whatever the password (NOLOGIN, a pg_hba.conf reject rule, or a locked account), and no other version logs in"
	case refused && allFailedDefinitely(r):
		r.State = StateDrifted
		r.Summary = "none of the probed versions logs in: the credential was changed downstream (or the user dropped) outside rotation"
	case refused:
		r.State = StateUnknown
		r.Summary = "AWSCURRENT is refused and no other version is known to log in, but some could not be tried (see each version's outcome): fix that first"
	default:
		r.State = StateUnknown
		r.Summary = fmt.Sprintf("AWSCURRENT could not be tried (%s): the probes cannot tell whether it logs in, so nothing may change until they can", cur.Outcome)
		if cur.Outcome == OutcomeUnproven {
			r.Summary = "the server accepts any password for the user, so no probe proves anything: make the server demand the password"
		}
	}
}

// allFailedDefinitely reports whether every probed version was refused or
// cannot be a working credential (no value, invalid, another target).
func allFailedDefinitely(r *Report) bool {
	for _, v := range r.Versions {
		switch v.Outcome {
		case OutcomeRefused, OutcomeLoginDisabled, OutcomeEmpty, OutcomeInvalid, OutcomeOtherTarget:
		default:
			return false
		}
	}
	return true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
