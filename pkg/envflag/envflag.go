// Package envflag reads the boolean settings of environment variables the
// way AWS's rotation templates do. It imports nothing of Rotary.
package envflag

import (
	"fmt"
	"strings"
)

// ParseBool reads a boolean the way AWS's templates do: true, 1, y and yes
// (any case) are true; false, 0, n and no are false; anything else is an error.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "y", "yes":
		return true, nil
	case "false", "0", "n", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean; use true or false", s)
}
