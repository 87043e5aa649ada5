package rotary

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// resolveJoin renders a template value made of strings, Fn::Join and Ref
// as a string, each Ref as <Ref:LogicalID>, the way CloudFormation would
// with the logical IDs for values.
func resolveJoin(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if ref, ok := v["Ref"].(string); ok && len(v) == 1 {
			return "<Ref:" + ref + ">"
		}
		if j, ok := v["Fn::Join"].([]any); ok && len(v) == 1 && len(j) == 2 {
			var parts []string
			for _, p := range j[1].([]any) {
				parts = append(parts, resolveJoin(t, p))
			}
			return strings.Join(parts, j[0].(string))
		}
	}
	t.Fatalf("unexpected value in an environment variable: %v", v)
	return ""
}

// TestBindingsNameEachSecretsResource: the rds-master function serves a
// secret the stack creates, one imported by its complete ARN and one by
// its partial ARN; the elasticache-user function two secrets. Each
// function's bindings variable holds exactly each of its secrets, by the
// ARN its invoke permission and its role name, bound to the resource of
// that secret; no other function has a bindings variable, and the
// variables cannot be set by hand.
func TestBindingsNameEachSecretsResource(t *testing.T) {
	e := newEnv(t)
	s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc})
	if err != nil {
		t.Fatal(err)
	}
	const (
		dbOne      = "arn:aws:rds:us-west-2:210987654321:db:one"
		dbTwo      = "arn:aws:rds:us-west-2:210987654321:db:two"
		clusterSix = "arn:aws:rds:us-west-2:210987654321:cluster:six"
		partialARN = "arn:aws:secretsmanager:us-west-2:210987654321:secret:svc/partial"
		secretC    = "arn:aws:secretsmanager:us-west-2:210987654321:secret:svc/c-CCCCCC"
		ecUser2ARN = "arn:aws:elasticache:us-west-2:210987654321:user:svc-b"
	)
	created, err := s.NewSecret(jsii.String("Created"), &NewSecretProps{SecretName: jsii.String("svc/created"), Template: map[string]any{"engine": "postgres", "username": "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(id string, secret awssecretsmanager.ISecret, typ FunctionType, mut func(*RotateSecretProps)) {
		t.Helper()
		p := &RotateSecretProps{Secret: secret, Type: typ, Schedule: jsii.String("rate(1 day)")}
		if mut != nil {
			mut(p)
		}
		if _, err := s.RotateSecret(jsii.String(id), p); err != nil {
			t.Fatal(err)
		}
	}
	db := target(e)
	rds := func(arn string) func(*RotateSecretProps) {
		return func(p *RotateSecretProps) { p.RDSDatabaseArn = jsii.String(arn) }
	}
	ec := func(user string) func(*RotateSecretProps) {
		return func(p *RotateSecretProps) {
			p.ElastiCacheUserArn, p.ReplicationGroupArn, p.Database = jsii.String(user), jsii.String(ecGroupARN), db
		}
	}
	rotate("RotateCreated", created, "rds-master", rds(dbOne))
	rotate("A", imported(e, secretA), "rds-master", rds(dbTwo))
	rotate("Partial", awssecretsmanager.Secret_FromSecretPartialArn(e.stack, jsii.String("P"), jsii.String(partialARN)), "rds-master", rds(clusterSix))
	rotate("B", imported(e, secretB), ElastiCacheUser, ec(ecUserARN))
	rotate("C", imported(e, secretC), ElastiCacheUser, ec(ecUser2ARN))
	rotate("M", imported(e, "arn:aws:secretsmanager:us-west-2:210987654321:secret:svc/m-MMMMMM"), MySQLSingleUser, func(p *RotateSecretProps) { p.Database = db })

	tmpl := assertions.Template_FromStack(e.stack, nil)
	var secrets map[string]any
	b, _ := json.Marshal(tmpl.FindResources(jsii.String("AWS::SecretsManager::Secret"), nil))
	if err := json.Unmarshal(b, &secrets); err != nil || len(secrets) != 1 {
		t.Fatalf("want the one created secret, got %d (%v)", len(secrets), err)
	}
	var createdID string
	for id := range secrets {
		createdID = id
	}
	want := map[string]map[string]map[string]string{
		"rds-master": {EnvRDSBindings: {
			"<Ref:" + createdID + ">": dbOne,
			secretA:                   dbTwo,
			partialARN:                clusterSix,
		}},
		string(ElastiCacheUser): {EnvElastiCacheBindings: {secretB: ecUserARN, secretC: ecUser2ARN}},
		string(MySQLSingleUser): {},
	}
	seen := 0
	for _, p := range resourceProps(tmpl, "AWS::Lambda::Function") {
		desc := fmt.Sprint(p["Description"])
		var typ string
		for k := range want {
			if strings.Contains(desc, " "+k+" ") {
				typ = k
			}
		}
		if typ == "" {
			continue
		}
		seen++
		vars := map[string]any{}
		if env, ok := p["Environment"].(map[string]any); ok {
			vars, _ = env["Variables"].(map[string]any)
		}
		got := map[string]map[string]string{}
		for _, name := range []string{EnvRDSBindings, EnvElastiCacheBindings} {
			v, ok := vars[name]
			if !ok {
				continue
			}
			var m map[string]string
			if err := json.Unmarshal([]byte(resolveJoin(t, v)), &m); err != nil {
				t.Fatalf("%s: %s is not a JSON object: %v (%s)", typ, name, err, resolveJoin(t, v))
			}
			got[name] = m
		}
		if !reflect.DeepEqual(got, want[typ]) {
			t.Errorf("%s: bindings\n got %v\nwant %v", typ, got, want[typ])
		}
	}
	if seen != len(want) {
		t.Fatalf("found %d of the %d functions", seen, len(want))
	}

	// The suite writes the variables: an Environment that sets one is refused.
	for i, name := range []string{EnvRDSBindings, EnvElastiCacheBindings} {
		s, err := NewSuite(e.stack, jsii.String(fmt.Sprint("Hand", i)), &SuiteProps{DistDir: jsii.String(e.dist), Environment: &map[string]*string{name: jsii.String("{}")}})
		if err == nil {
			_, err = s.Function(RandomSecret)
		}
		if err == nil || !strings.Contains(err.Error(), name+" is set by the suite") {
			t.Errorf("Environment setting %s: %v, want it refused", name, err)
		}
	}
}
