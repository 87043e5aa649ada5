package jsontext

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestErrorTextNeverQuotesTheInput(t *testing.T) {
	const secret = "hunter2-secret-value"
	var v struct{ Port int }
	for _, in := range []string{`{"password":"` + secret, `{"Port":"` + secret + `"}`, secret} {
		err := json.Unmarshal([]byte(in), &v)
		if err == nil {
			t.Fatalf("%d bytes decoded", len(in))
		}
		got := ErrorText(err)
		if strings.Contains(got, secret) || got == "" {
			t.Fatalf("ErrorText = %q for a %d-byte input: it must describe the error without the input", got, len(in))
		}
	}
}
