package dbsecret

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Bindings binds each secret a function serves to the one AWS resource
// (an RDS database, an ElastiCache user) the function may change for it.
// A function whose role may change several resources, one per secret,
// needs it: without it, whoever may write one of its secrets could name
// in it another secret's resource, and the function would change that
// one. The deployment (the CDK app) writes it, from the same config that
// scopes the role, into an environment variable as a JSON object
// {"<secret ARN>": "<resource ARN>"}. A nil Bindings binds nothing and
// refuses nothing (a function deployed by hand, without the variable).
type Bindings map[string]string

// secretArnRe is a Secrets Manager secret ARN, complete (with the
// 6-character suffix Secrets Manager appends) or partial (without it).
var secretArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$`)

// ParseBindings reads the JSON object of env (the variable's name, for
// the errors) into Bindings; "" is nil. Each key must be a secret ARN,
// and each value must pass checkValue (which says what it wants).
func ParseBindings(env, value string, checkValue func(string) error) (Bindings, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	var b Bindings
	if err := json.Unmarshal([]byte(value), &b); err != nil || b == nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object of strings {\"<secret ARN>\": \"<resource ARN>\"}; the CDK app writes it, or unset it to bind nothing", ErrConfig, env)
	}
	for k, v := range b {
		if !secretArnRe.MatchString(k) {
			return nil, fmt.Errorf("%w: %s: key %q is not a Secrets Manager secret ARN; bind each secret by its ARN", ErrConfig, env, k)
		}
		if err := checkValue(v); err != nil {
			return nil, fmt.Errorf("%w: %s: the value for %s: %w", ErrConfig, env, k, err)
		}
	}
	return b, nil
}

// Lookup returns the resource bound to the secret arn, the complete ARN
// the engine has from DescribeSecret. A binding may name the secret by its
// complete ARN or by its partial ARN (without "-" and the 6-character
// suffix), as IAM and the CDK's imported secrets do; the complete ARN
// wins, and the partial one matches only that exact suffix length, so
// that a binding of "app" is never taken for the secret "app-other".
func (b Bindings) Lookup(arn string) (string, bool) {
	if v, ok := b[arn]; ok {
		return v, true
	}
	if n := len(arn) - 7; n > 0 && arn[n] == '-' {
		v, ok := b[arn[:n]]
		return v, ok
	}
	return "", false
}
