package redisserver

import (
	"crypto/sha256"
	"encoding/hex"
)

// hashHex is the form in which Redis keeps a password: SHA-256, in hex.
func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
