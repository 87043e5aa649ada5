package watch

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// Notification is one repair, or one refusal to repair, for people to
// read. It names the secret and what happened, never a value.
type Notification struct {
	Subject    string
	Message    string
	SecretARN  string
	SecretName string
	// Outcome is the Check's Repair (RepairDone, RepairTooYoung, ...) and
	// Detail its RepairDetail.
	Outcome string
	Detail  string
}

// Notifier sends notifications.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// SNSPublisher is the part of the SNS API the notifier calls;
// *sns.Client satisfies it.
type SNSPublisher interface {
	Publish(context.Context, *sns.PublishInput, ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// SNSNotifier publishes each notification to an SNS topic.
type SNSNotifier struct {
	Client   SNSPublisher
	TopicARN string
}

// maxSubject is SNS's limit on a subject (ASCII, under 100 characters).
const maxSubject = 99

// Notify publishes n to the topic.
func (s *SNSNotifier) Notify(ctx context.Context, n Notification) error {
	subject := []rune(n.Subject)
	for i, r := range subject {
		if r < 0x20 || r > 0x7e { // SNS wants printable ASCII in a subject
			subject[i] = '?'
		}
	}
	if len(subject) > maxSubject {
		subject = append(subject[:maxSubject-3], '.', '.', '.')
	}
	_, err := s.Client.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(s.TopicARN),
		Subject:  aws.String(string(subject)),
		Message:  aws.String(n.Message),
	})
	if err != nil {
		return fmt.Errorf("publish to %s: %w; check that the watch may call sns:Publish on it (and use its KMS key)", s.TopicARN, err)
	}
	return nil
}
