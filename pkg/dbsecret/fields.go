package dbsecret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Fields reads the fields of a JSON secret as AWS's templates write them:
// strings, a port as a number or a numeric string, ssl as a boolean or
// "true"/"false". Every error wraps Err (the credential type's own: Parse
// uses ErrInvalidSecret), names the field and says how to fix it; none
// shows the password.
type Fields struct {
	M   map[string]json.RawMessage
	Err error
}

// Error is an error about field.
func (f Fields) Error(field, format string, args ...any) error {
	return fmt.Errorf("%w: field %q %s", f.Err, field, fmt.Sprintf(format, args...))
}

// ValueError is Error quoting the field's value before rest, unless the
// message would then show the password (4 characters or more, as is or
// Go-quoted): a password pasted into the wrong field must not reach a log.
func (f Fields) ValueError(field, value, rest, password string) error {
	err := f.Error(field, "%q %s", value, rest)
	if len(password) >= 4 {
		q := strconv.Quote(password)
		if msg := err.Error(); strings.Contains(msg, password) || strings.Contains(msg, q[1:len(q)-1]) {
			return f.Error(field, "%s (the value is not shown: it holds the password)", rest)
		}
	}
	return err
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// Required reads a string that must be present and not blank.
func (f Fields) Required(field string) (string, error) {
	s, present, err := f.str(field)
	switch {
	case err != nil:
		return "", err
	case !present:
		return "", f.Error(field, "is missing; add it to the secret")
	case strings.TrimSpace(s) == "":
		return "", f.Error(field, "is empty; set it")
	}
	return s, nil
}

// Optional reads a string that may be absent or null ("").
func (f Fields) Optional(field string) (string, error) {
	s, _, err := f.str(field)
	return s, err
}

func (f Fields) str(field string) (s string, present bool, err error) {
	raw, ok := f.M[field]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, f.Error(field, "must be a JSON string")
	}
	return s, true, nil
}

// Port reads "port", a JSON number or a numeric string; absent means def.
func (f Fields) Port(def int, password string) (int, error) {
	raw, ok := f.M["port"]
	if !ok || isNull(raw) {
		return def, nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&n); err != nil {
			return 0, f.Error("port", "must be a number or a numeric string, such as %d", def)
		}
		text = n.String()
	}
	p, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || p < 1 || p > 65535 {
		return 0, f.ValueError("port", text, "is not a port; use a whole number from 1 to 65535", password)
	}
	return p, nil
}

// SSL reads "ssl": true/false or "true"/"false" (any case); absent is nil.
func (f Fields) SSL() (*bool, error) {
	raw, ok := f.M["ssl"]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return &b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			b = true
			return &b, nil
		case "false":
			return &b, nil
		}
	}
	return nil, f.Error("ssl", "must be true or false (a JSON boolean or the string \"true\" or \"false\"); remove it to require TLS with full verification")
}
