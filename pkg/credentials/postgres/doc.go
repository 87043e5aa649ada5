// Package postgres rotates PostgreSQL passwords: one user (SingleUser) or two
// alternating users managed by an admin secret (MultiUser), sending each new
// password as a SCRAM-SHA-256 verifier computed in the function.
package postgres
