package smlocal

import (
	"bytes"
	"net/http"
)

// emulatorTimeoutPrefix starts the body the Lambda Runtime Interface
// Emulator answers, with HTTP 200 and no X-Amz-Function-Error header, when
// an invocation runs past AWS_LAMBDA_FUNCTION_TIMEOUT.
const emulatorTimeoutPrefix = "Task timed out after "

// emulatorTimeout returns the emulator's timeout message, if the answer is
// one. Lambda reports a timeout as a function error (errorType
// Sandbox.Timedout), so the step it ended must fail.
func emulatorTimeout(status int, body []byte) (string, bool) {
	body = bytes.TrimSpace(body)
	if status != http.StatusOK || !bytes.HasPrefix(body, []byte(emulatorTimeoutPrefix)) {
		return "", false
	}
	return string(body), true
}
