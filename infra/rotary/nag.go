package rotary

import (
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Reasons for the cdk-nag findings the suite accepts. Each is attached as a
// suppression to exactly the resource and finding it explains.
const (
	// ReasonENIWildcard explains Resource "*" on the VPC network-interface actions.
	ReasonENIWildcard = "Lambda creates and deletes the function's VPC network interfaces with the execution role " +
		"(the actions of AWSLambdaVPCAccessExecutionRole, written out instead of attaching the managed policy). " +
		"ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets support no resource-level permissions, and the interface " +
		"IDs are not known before Lambda creates them. No Secrets Manager or KMS action uses Resource '*'."
	// ReasonENIAndBatchWildcard explains Resource "*" on the policy of a
	// function in the VPC that also reads in batches (one finding covers
	// both statements).
	ReasonENIAndBatchWildcard = "Lambda creates and deletes the function's VPC network interfaces with the execution role " +
		"(the actions of AWSLambdaVPCAccessExecutionRole, written out instead of attaching the managed policy). " +
		"ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets support no resource-level permissions, and the interface " +
		"IDs are not known before Lambda creates them. secretsmanager:BatchGetSecretValue supports no resource-level permissions either; " +
		"each secret of a batch still needs secretsmanager:GetSecretValue on that secret, which this role has on its own secrets and masters only. " +
		"No other Secrets Manager action and no KMS action uses Resource '*'."
	// ReasonRDSDescribe explains the db:* and cluster:* wildcards of multi-user types.
	ReasonRDSDescribe = "Multi-user rotation reads the DB instance or cluster named by the secret, which the stack does not know; " +
		"rds:DescribeDBInstances/DescribeDBClusters are read-only and scoped to this account and region."
)

// suppressNag records the accepted findings on the function's role policy.
func (f *Function) suppressNag() {
	var s []*cdknag.NagPackSuppression
	if f.inVpc {
		reason := ReasonENIWildcard
		if f.Type.BatchReads() {
			reason = ReasonENIAndBatchWildcard
		}
		s = append(s, &cdknag.NagPackSuppression{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String(reason),
			AppliesTo: &[]any{"Resource::*"},
		})
	}
	if f.Type.NeedsRDSRead() {
		s = append(s, &cdknag.NagPackSuppression{
			Id:     jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String(ReasonRDSDescribe),
			AppliesTo: &[]any{&cdknag.RegexAppliesTo{
				Regex: jsii.String(`/^Resource::arn:<AWS::Partition>:rds:[a-z0-9-]+:[0-9]+:(db|cluster):\*$/`),
			}},
		})
	}
	if len(s) > 0 {
		cdknag.NagSuppressions_AddResourceSuppressions(f.Role, &s, jsii.Bool(true))
	}
}
