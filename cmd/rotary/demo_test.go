package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemoRotatesThreeTimes(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"demo"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("rotary demo exited %d: %s", code, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"Rotation 1 of 3", "Rotation 3 of 3", "finishSecret  ok", "AWSPREVIOUS", "(deprecated)"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if n := strings.Count(text, "checked: apiKey and signingKey are new"); n != 3 {
		t.Errorf("demo proved %d rotations, want 3", n)
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("stderr = %q", errOut.String())
	}
}
