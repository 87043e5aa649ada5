// Package smlocal is a local AWS Secrets Manager: an http.Handler that speaks
// the service's JSON wire protocol to the real aws-sdk-go-v2 client, keeps
// secrets, versions and staging labels exactly as docs/protocol.md
// describes, and runs rotations by invoking rotation functions (in process
// or under the Lambda Runtime Interface Emulator) once per step.
//
// Tests point the SDK at it with BaseEndpoint set to an httptest server
// wrapping a *Server, or at the URL returned by ListenAndServe. Secret values
// never appear in its logs or errors.
package smlocal
