package dbsecret

import "testing"

// TestBindingsLookup: a secret is found by its complete ARN, or by its
// partial ARN (without "-" and the 6-character suffix); a partial ARN
// never matches another secret whose name it begins.
func TestBindingsLookup(t *testing.T) {
	const pre = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
	b := Bindings{pre + "app": "partial", pre + "full-AbCdEf": "complete", pre + "both": "partial-both", pre + "both-XyZ123": "complete-both"}
	for arn, want := range map[string]string{
		pre + "app-AbCdEf":       "partial",
		pre + "full-AbCdEf":      "complete",
		pre + "both-XyZ123":      "complete-both",
		pre + "both-Other1":      "partial-both",
		pre + "app-other-AbCdEf": "",
		pre + "app-AbCdE":        "",
		pre + "full-ZzZzZz":      "",
		pre + "app":              "partial", // the key itself
	} {
		got, ok := b.Lookup(arn)
		if got != want || ok != (want != "") {
			t.Errorf("Lookup(%s) = %q, %v; want %q", arn, got, ok, want)
		}
	}
	if _, ok := Bindings(nil).Lookup(pre + "app-AbCdEf"); ok {
		t.Error("nil Bindings bind something")
	}
}
