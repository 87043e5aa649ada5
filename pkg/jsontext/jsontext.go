// Package jsontext describes JSON decoding errors without quoting the input,
// which may hold a secret. It imports nothing of Rotary.
package jsontext

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrorText describes a JSON decoding error by position or field and type,
// never by the bytes it failed on.
func ErrorText(err error) string {
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
