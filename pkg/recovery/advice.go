package recovery

import "fmt"

// Advice is the one rotary command that fixes what a probe of the secret
// called name found, as a sentence without a final period. The CLI and the
// watch both print it, so they never advise differently.
func Advice(name string, r *Report) string {
	switch r.Plan {
	case PlanComplete:
		return fmt.Sprintf("Applications reading AWSCURRENT cannot log in: run 'rotary unstick %s' to complete the rotation (if none is still running)", name)
	case PlanRestore:
		return fmt.Sprintf("Applications reading AWSCURRENT cannot log in: run 'rotary unstick %s' to make version %s AWSCURRENT again", name, r.PlanVersion)
	case PlanClearPending:
		return fmt.Sprintf("If no rotation is still running, run 'rotary unstick %s' to clear it, fix the cause and rotate again", name)
	}
	switch r.State {
	case StateLoginDisabled:
		return fmt.Sprintf("Let the user log in again (PostgreSQL: ALTER ROLE ... LOGIN, or the pg_hba.conf rule that rejects it; MySQL/MariaDB: ALTER USER ... ACCOUNT UNLOCK), then run 'rotary unstick %s'", name)
	case StateDrifted:
		return fmt.Sprintf("No command can fix this from the secret alone: store the password the server has as AWSCURRENT ('aws secretsmanager put-secret-value'), or set a new one on the server by hand and store that; then 'rotary unstick %s'", name)
	case StateUnknown:
		return fmt.Sprintf("Fix what the probes report, then 'rotary probe %s' again", name)
	}
	if r.SingleCredential && len(r.StillValid) > 0 {
		return fmt.Sprintf("An older credential still logs in: run 'rotary revoke %s'", name)
	}
	return "Nothing needs fixing"
}
