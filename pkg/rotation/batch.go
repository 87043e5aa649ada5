package rotation

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// batchGetter is the Secrets Manager call that reads the AWSCURRENT version
// of several secrets at once. *secretsmanager.Client has it; a client that
// does not (a test's fake) makes setSecret read one secret per call.
type batchGetter interface {
	BatchGetSecretValue(context.Context, *secretsmanager.BatchGetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
}

// maxBatch is the most secrets one BatchGetSecretValue call returns.
const maxBatch = 20

// currentWith reads the secret's AWSCURRENT version and the AWSCURRENT
// versions of the secrets named by others in one BatchGetSecretValue call,
// keeping the others for SetRequest.Secrets (inv.prefetched). Every value
// read is registered with the scrubber first. Nothing is lost when the
// batch cannot be used: a refused or failed call, a secret the answer
// lacks (its entry in Errors) or holds as binary, is read on its own
// afterwards with GetSecretValue, which gives the error GetSecretValue
// gives. A refusal (the role lacks secretsmanager:BatchGetSecretValue) is
// remembered for the instance.
func (h *Handler) currentWith(ctx context.Context, inv *invocation, others []string) (Version, error) {
	b, ok := h.sm.(batchGetter)
	ids := []string{inv.arn}
	for _, id := range others {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if !ok || len(ids) < 2 || len(ids) > maxBatch || h.noBatch.Load() {
		return h.getVersion(ctx, inv, inv.arn, "", LabelCurrent)
	}
	out, err := b.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "AccessDeniedException" {
			h.noBatch.Store(true)
		}
		return h.getVersion(ctx, inv, inv.arn, "", LabelCurrent)
	}
	var cur *Version
	for _, e := range out.SecretValues {
		if e.SecretString == nil || !slices.Contains(e.VersionStages, LabelCurrent) {
			continue // read on its own, which says what is wrong with it
		}
		v := Version{ID: aws.ToString(e.VersionId), Value: aws.ToString(e.SecretString)}
		v.decoded = inv.decodeCache(v)
		inv.scrub.addSecret(v.Value)
		arn, name := aws.ToString(e.ARN), aws.ToString(e.Name)
		if arn == inv.arn && cur == nil {
			c := v
			cur = &c
		}
		for _, id := range ids[1:] {
			if names(arn, name, id) {
				if inv.prefetched == nil {
					inv.prefetched = map[string]Version{}
				}
				inv.prefetched[id] = v
			}
		}
	}
	if cur == nil {
		return h.getVersion(ctx, inv, inv.arn, "", LabelCurrent)
	}
	return *cur, nil
}

// names reports whether id, a SecretId as Secrets Manager takes it (a name,
// an ARN, or an ARN without its six-character suffix), names the secret
// with this ARN and name.
func names(arn, name, id string) bool {
	if !strings.HasPrefix(id, "arn:") {
		return name != "" && name == id
	}
	return arn == id || (len(arn) == len(id)+7 && strings.HasPrefix(arn, id) && arn[len(id)] == '-')
}
