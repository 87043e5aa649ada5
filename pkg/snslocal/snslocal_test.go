package snslocal_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"

	"github.com/rotary-secrets/rotary/pkg/snslocal"
)

func client(t *testing.T) (*snslocal.Server, *sns.Client) {
	t.Helper()
	srv := snslocal.New("us-east-1", "123456789012")
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, sns.New(sns.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", ""),
	})
}

// TestPublishThroughTheSDK: the real SDK client creates a topic, publishes
// to it and reads the message id; the server records the message as sent.
func TestPublishThroughTheSDK(t *testing.T) {
	srv, c := client(t)
	ctx := context.Background()
	ct, err := c.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alarms")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(ct.TopicArn), "arn:aws:sns:us-east-1:123456789012:alarms"; got != want {
		t.Fatalf("TopicArn = %q, want %q", got, want)
	}
	msg := "line one & <two>\n\"three\" é"
	out, err := c.Publish(ctx, &sns.PublishInput{TopicArn: ct.TopicArn, Subject: aws.String("Rotary repaired app/db"), Message: aws.String(msg)})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()
	if len(got) != 1 || got[0].Message != msg || got[0].Subject != "Rotary repaired app/db" || got[0].TopicARN != *ct.TopicArn {
		t.Fatalf("recorded %+v, want the one message as sent", got)
	}
	if aws.ToString(out.MessageId) == "" || aws.ToString(out.MessageId) != got[0].MessageID {
		t.Fatalf("MessageId = %q, recorded %q", aws.ToString(out.MessageId), got[0].MessageID)
	}
	lt, err := c.ListTopics(ctx, &sns.ListTopicsInput{})
	if err != nil || len(lt.Topics) != 1 || aws.ToString(lt.Topics[0].TopicArn) != *ct.TopicArn {
		t.Fatalf("ListTopics = %+v, %v", lt, err)
	}
}

// TestErrorsAsAWSDocumentsThem: the SDK maps each error to its typed error.
func TestErrorsAsAWSDocumentsThem(t *testing.T) {
	srv, c := client(t)
	ctx := context.Background()
	arn, err := srv.CreateTopic("alarms")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Publish(ctx, &sns.PublishInput{TopicArn: aws.String("arn:aws:sns:us-east-1:123456789012:nope"), Message: aws.String("m")})
	var nf *types.NotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("publish to an unknown topic: %v, want NotFoundException", err)
	}
	for name, in := range map[string]*sns.PublishInput{
		"empty message":         {TopicArn: &arn, Message: aws.String("")},
		"subject with newline":  {TopicArn: &arn, Message: aws.String("m"), Subject: aws.String("a\nb")},
		"subject too long":      {TopicArn: &arn, Message: aws.String("m"), Subject: aws.String(strings.Repeat("s", 100))},
		"message too long":      {TopicArn: &arn, Message: aws.String(strings.Repeat("m", snslocal.MaxMessageBytes+1))},
		"not an ARN":            {TopicArn: aws.String("alarms"), Message: aws.String("m")},
		"topic and target both": {TopicArn: &arn, TargetArn: &arn, Message: aws.String("m")},
	} {
		_, err := c.Publish(ctx, in)
		var ip *types.InvalidParameterException
		if !errors.As(err, &ip) {
			t.Errorf("%s: %v, want InvalidParameterException", name, err)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages recorded for refused publishes", n)
	}
	_, err = c.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("bad name")})
	var ip *types.InvalidParameterException
	if !errors.As(err, &ip) {
		t.Fatalf("CreateTopic with a bad name: %v, want InvalidParameterException", err)
	}
	_, err = c.Subscribe(ctx, &sns.SubscribeInput{TopicArn: &arn, Protocol: aws.String("email")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidAction" {
		t.Fatalf("an action it does not serve: %v, want InvalidAction", err)
	}
}
