package issuer

import (
	"errors"
	"fmt"
	"testing"
)

// A name that collides with a user of the server (another role's, a
// rotation's, a concurrent request's) is never taken over: the engine's
// create-only refusal makes createFresh draw another name.
func TestCreateFreshDrawsAgainOnCollision(t *testing.T) {
	errExists := errors.New("exists")
	draws := []string{"app_a", "app_b", "app_c"}
	next := func() (string, error) {
		if len(draws) == 0 {
			return "", errors.New("no more names")
		}
		n := draws[0]
		draws = draws[1:]
		return n, nil
	}
	var tried []string
	name, err := createFresh(next, []User{{Name: "app_a"}}, errExists, func(name string) error {
		tried = append(tried, name)
		if name == "app_b" {
			return fmt.Errorf("wrapped: %w", errExists)
		}
		return nil
	})
	if err != nil || name != "app_c" {
		t.Fatalf("createFresh = %q, %v; want app_c (app_a is this role's, app_b exists on the server)", name, err)
	}
	if fmt.Sprint(tried) != "[app_b app_c]" {
		t.Fatalf("created %v, want app_b then app_c", tried)
	}
	other := errors.New("refused")
	if _, err := createFresh(func() (string, error) { return "app_d", nil }, nil, errExists, func(string) error { return other }); !errors.Is(err, other) {
		t.Fatalf("another refusal: got %v, want it returned", err)
	}
}
