package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/registry"
	"github.com/rotary-secrets/rotary/pkg/watch"
)

// WatchTopicName is the local SNS topic the stack creates for the watch;
// WatchTopicARN is its ARN, which the watch function is given as
// ROTARY_WATCH_TOPIC_ARN (Config.Env or FunctionEnv may set another).
const WatchTopicName = "rotary-watch"

// WatchTopicARN is the ARN of the stack's watch topic.
func WatchTopicARN() string {
	return fmt.Sprintf("arn:aws:sns:%s:%s:%s", Region, AccountID, WatchTopicName)
}

// watchEnv is the watch function's environment: the stack's endpoint for
// Lambda and SNS, and the stack's topic.
func (s *Stack) watchEnv() []string {
	return []string{
		"AWS_ENDPOINT_URL_LAMBDA=" + s.Endpoint,
		"AWS_ENDPOINT_URL_SNS=" + s.Endpoint,
		watch.EnvTopicARN + "=" + WatchTopicARN(),
	}
}

// ErrNoWatch is returned by RunWatch when the stack does not run the watch.
var ErrNoWatch = errors.New("the local stack does not run the watch function")

// WatchEvent is the event the watch's schedule would send: the local
// Secrets Manager's time, and every secret (not deleted) whose rotation
// function is one the stack runs, with that function, in ARN order.
func (s *Stack) WatchEvent(ctx context.Context) (watch.Event, error) {
	ev := watch.Event{Time: s.SM.Now().Format(time.RFC3339Nano), Secrets: []watch.Target{}}
	p := secretsmanager.NewListSecretsPaginator(s.Client, &secretsmanager.ListSecretsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return ev, fmt.Errorf("list the local secrets: %w", err)
		}
		for _, e := range page.SecretList {
			fn := aws.ToString(e.RotationLambdaARN)
			if fn == "" || e.DeletedDate != nil {
				continue
			}
			if _, err := s.resolve(fn); err != nil || fn == FunctionARN(registry.Watch.Name) {
				continue
			}
			ev.Secrets = append(ev.Secrets, watch.Target{ARN: aws.ToString(e.ARN), Function: fn})
		}
	}
	slices.SortFunc(ev.Secrets, func(a, b watch.Target) int {
		switch {
		case a.ARN < b.ARN:
			return -1
		case a.ARN > b.ARN:
			return 1
		}
		return 0
	})
	return ev, nil
}

// RunWatch invokes the watch function once with ev (see WatchEvent), as
// its schedule would, and returns its answer. Its lines go to Config.Log
// like the other functions' output.
func (s *Stack) RunWatch(ctx context.Context, ev watch.Event) (*watch.Result, error) {
	arn := FunctionARN(registry.Watch.Name)
	s.mu.Lock()
	_, ok := s.functions[arn]
	s.mu.Unlock()
	if !ok {
		return nil, ErrNoWatch
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	fn, release, err := s.acquire(ctx, arn)
	if err != nil {
		return nil, err
	}
	out, err := fn.Invoke(ctx, payload)
	release()
	if err != nil {
		return nil, fmt.Errorf("invoke the watch: %w", err)
	}
	var res watch.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("the watch answered without a result: %w", err)
	}
	return &res, nil
}
