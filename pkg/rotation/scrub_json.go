package rotation

import (
	"encoding/json"
	"errors"
	"fmt"
)

// jsonErrorWithoutValue describes a JSON decoding error without quoting the
// input, which may be a secret.
func jsonErrorWithoutValue(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s, not a JSON %s", te.Field, te.Type, te.Value)
	}
	return "invalid JSON"
}
