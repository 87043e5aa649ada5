package envflag

import "testing"

func TestParseBool(t *testing.T) {
	for _, s := range []string{"true", "TRUE", "1", "y", "Yes"} {
		if b, err := ParseBool(s); err != nil || !b {
			t.Errorf("ParseBool(%q) = %v, %v; want true", s, b, err)
		}
	}
	for _, s := range []string{"false", "0", "n", "NO"} {
		if b, err := ParseBool(s); err != nil || b {
			t.Errorf("ParseBool(%q) = %v, %v; want false", s, b, err)
		}
	}
	if _, err := ParseBool("si"); err == nil {
		t.Error("ParseBool(\"si\") accepted")
	}
}
