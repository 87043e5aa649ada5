// Command echofn is a test-only Lambda handler: it echoes its input, fails or
// panics when the input asks for it, and reports environment variables.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

// request is what the tests send.
type request struct {
	// Echo is returned unchanged.
	Echo string `json:"echo,omitempty"`
	// Fail makes the handler return an error with this message.
	Fail string `json:"fail,omitempty"`
	// Panic makes the handler panic with this message.
	Panic string `json:"panic,omitempty"`
	// Env names environment variables whose values are returned.
	Env []string `json:"env,omitempty"`
	// SleepMillis delays the answer, unless the invocation's deadline
	// comes first.
	SleepMillis int `json:"sleepMillis,omitempty"`
	// HangMillis delays the answer, deadline or not.
	HangMillis int `json:"hangMillis,omitempty"`
}

// response is what the handler returns.
type response struct {
	Echo string            `json:"echo"`
	Env  map[string]string `json:"env,omitempty"`
	PID  int               `json:"pid"`
}

// echoError is a named error type, so the emulator reports errorType "echoError".
type echoError struct{ msg string }

func (e *echoError) Error() string { return e.msg }

func handle(ctx context.Context, raw json.RawMessage) (response, error) {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		return response{}, errors.New("echofn: decode request: " + err.Error())
	}
	if req.SleepMillis > 0 {
		select {
		case <-time.After(time.Duration(req.SleepMillis) * time.Millisecond):
		case <-ctx.Done():
			return response{}, ctx.Err()
		}
	}
	if req.HangMillis > 0 {
		time.Sleep(time.Duration(req.HangMillis) * time.Millisecond)
	}
	if req.Panic != "" {
		panic(req.Panic)
	}
	if req.Fail != "" {
		return response{}, &echoError{msg: req.Fail}
	}
	resp := response{Echo: req.Echo, PID: os.Getpid()}
	if len(req.Env) > 0 {
		resp.Env = make(map[string]string, len(req.Env))
		for _, k := range req.Env {
			resp.Env[k] = os.Getenv(k)
		}
	}
	return resp, nil
}

func main() {
	lambda.Start(handle)
}
