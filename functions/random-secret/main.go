// Command random-secret is the rotation function for secrets with no
// downstream system (API keys, tokens, signing keys): it rotates the fields
// named in ROTATE_FIELDS and keeps every other field.
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/random"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := random.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	cred, err := random.New(cfg)
	if err != nil {
		rotation.Fatal(err)
	}
	rotation.Start(cred)
}
