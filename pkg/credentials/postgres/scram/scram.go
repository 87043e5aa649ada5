// Package scram computes PostgreSQL's SCRAM-SHA-256 password verifiers, so
// that a password can be set without the server (or its logs) ever seeing it.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// ErrPassword is wrapped when a password cannot be turned into a verifier
// the server would agree with.
var ErrPassword = errors.New("password not supported for SCRAM")

// Parameters of the verifiers this package computes, the same as
// PostgreSQL's own (scram_iterations = 4096, 16-byte salt).
const (
	Iterations = 4096
	SaltLen    = 16
)

// Verifier computes the SCRAM-SHA-256 verifier (RFC 5802, RFC 7677) of a
// password with a random salt, in PostgreSQL's format
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. Sent in place of
// the password, it lets the server check logins without ever seeing the
// plaintext.
func Verifier(password string) (string, error) {
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("compute SCRAM verifier: read random salt: %w", err)
	}
	return verifier(password, salt, Iterations)
}

func verifier(password string, salt []byte, iterations int) (string, error) {
	// PostgreSQL normalizes the password with SASLprep, which leaves printable
	// ASCII unchanged. Rotary's passwords are ASCII; anything else is refused
	// rather than risk a verifier the server's login check disagrees with.
	for i := 0; i < len(password); i++ {
		if password[i] < 0x20 || password[i] > 0x7e {
			return "", fmt.Errorf("%w: field \"password\" has a character outside printable ASCII at byte %d; Rotary sets only printable ASCII passwords, check the password policy", ErrPassword, i)
		}
	}
	if password == "" {
		return "", fmt.Errorf("%w: field \"password\" is empty", ErrPassword)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("compute SCRAM verifier: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
