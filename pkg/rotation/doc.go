// Package rotation is the engine every Rotary function shares: it turns a
// credential type into a Secrets Manager rotation Lambda handler that honours
// the rotation protocol (event checks, the four steps, staging labels),
// generates passwords, logs one scrubbed line per step and never lets a secret
// value reach a log line or an error.
package rotation
