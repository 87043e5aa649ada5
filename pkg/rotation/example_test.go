package rotation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// tokenStore is the downstream system of the example: a service that
// accepts, for each client, the tokens it has been given.
type tokenStore struct {
	mu     sync.Mutex
	tokens map[string]map[string]bool // client -> its valid tokens
}

var errRefused = errors.New("token refused")

func (s *tokenStore) check(client, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tokens[client][token] {
		return fmt.Errorf("%w for client %q", errRefused, client) // never the token itself
	}
	return nil
}

func (s *tokenStore) add(client, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens[client] == nil {
		s.tokens[client] = map[string]bool{}
	}
	s.tokens[client][token] = true
}

func (s *tokenStore) keepOnly(client, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[client] = map[string]bool{token: true}
}

// tokenSecret is the secret's value: {"client": "...", "token": "..."}.
type tokenSecret struct {
	Client string `json:"client"`
	Token  string `json:"token"`
}

func decode(v rotation.Version) (tokenSecret, error) {
	var s tokenSecret
	if err := v.Decode(&s); err != nil {
		return s, err
	}
	if s.Client == "" || s.Token == "" {
		return s, fmt.Errorf("version %s: fields \"client\" and \"token\" must be non-empty strings", v.ID)
	}
	return s, nil
}

// tokens is the credential type: the four methods of rotation.Credential,
// and two optional abilities, PublicFielder and Revoker.
type tokens struct{ store *tokenStore }

func (tokens) Validate(_ context.Context, v rotation.Version) error {
	_, err := decode(v)
	return err
}

// Generate changes one field; the engine keeps every other.
func (tokens) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	token, err := req.Passwords.Generate()
	return rotation.GenerateResponse{Changes: map[string]any{"token": token}}, err
}

// Set gives the service the pending token; the current one keeps working
// until Revoke. Giving a token twice is harmless.
func (t tokens) Set(_ context.Context, req rotation.SetRequest) error {
	s, err := decode(req.Pending)
	if err == nil {
		t.store.add(s.Client, s.Token)
	}
	return err
}

func (t tokens) Test(_ context.Context, req rotation.TestRequest) error {
	s, err := decode(req.Pending)
	if err != nil {
		return err
	}
	return t.store.check(s.Client, s.Token)
}

// Revoke leaves the client only AWSCURRENT's token, after proving it works.
func (t tokens) Revoke(_ context.Context, req rotation.RevokeRequest) error {
	s, err := decode(req.Current)
	if err != nil {
		return err
	}
	if err := t.store.check(s.Client, s.Token); err != nil {
		return fmt.Errorf("AWSCURRENT does not work, so revoke changes nothing: %w", err)
	}
	t.store.keepOnly(s.Client, s.Token)
	return nil
}

// PublicFields lets the engine's logs show the client, never the token.
func (tokens) PublicFields() []string { return []string{"client"} }

// Example implements the Credential seam for a toy credential type and runs
// the conformance suite (rotationtest) against it, with the downstream
// service as the judge of every outcome.
func Example() {
	store := &tokenStore{tokens: map[string]map[string]bool{}}
	var clients atomic.Int64
	value := func(s tokenSecret) string { b, _ := json.Marshal(s); return string(b) }
	parse := func(v string) tokenSecret { var s tokenSecret; _ = json.Unmarshal([]byte(v), &s); return s }

	result := rotationtest.Conform(rotationtest.Subject{
		Credential: tokens{store},
		// One client per secret, with its first token.
		NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
			n := clients.Add(1)
			s := tokenSecret{Client: fmt.Sprintf("client-%d", n), Token: fmt.Sprintf("first-token-%d", n)}
			store.add(s.Client, s.Token)
			return value(s)
		},
		// The service, not the secret, says whether a value works.
		Check: func(_ context.Context, v string) error {
			s := parse(v)
			return store.check(s.Client, s.Token)
		},
		Corrupt: func(v string) string {
			s := parse(v)
			s.Token += "x"
			return value(s)
		},
		Refused: func(err error) bool { return errors.Is(err, errRefused) },
	})
	if !result.OK {
		fmt.Print(result.Output)
	}
	fmt.Println("conformance suite passed:", result.OK)
	// Output: conformance suite passed: true
}
