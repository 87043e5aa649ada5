package app

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/infra/config"
	"github.com/rotary-secrets/rotary/infra/internal/cdktest"
	"github.com/rotary-secrets/rotary/infra/rotary"
	"github.com/rotary-secrets/rotary/pkg/registry"
)

// Each synth costs seconds of jsii start-up and synthesis, so every fixture
// is built once per test binary and shared (read-only) by the tests.

var tempDirs struct {
	sync.Mutex
	dirs []string
}

func TestMain(m *testing.M) {
	cdktest.SilenceNodeBanner()
	code := m.Run()
	tempDirs.Lock()
	for _, d := range tempDirs.dirs {
		os.RemoveAll(d)
	}
	tempDirs.Unlock()
	os.Exit(code)
}

// tempDir outlives single tests (fixtures are shared); TestMain removes it.
func tempDir() (string, error) {
	d, err := os.MkdirTemp("", "rotary-infra-test-")
	if err != nil {
		return "", err
	}
	tempDirs.Lock()
	tempDirs.dirs = append(tempDirs.dirs, d)
	tempDirs.Unlock()
	return d, nil
}

// fakeDist writes a dist directory with a dummy <type>.zip (holding a
// `bootstrap`) for each type, and watch.zip, as `make build` would.
func fakeDist(types ...rotary.FunctionType) (string, error) {
	dir, err := tempDir()
	if err != nil {
		return "", err
	}
	names := []string{registry.Watch.Name, registry.Issuer.Name}
	for _, t := range types {
		names = append(names, string(t))
	}
	return dir, cdktest.WriteFakeDist(dir, names...)
}

// fixture is one synthesized stack.
type fixture struct {
	cfg         *config.Config
	stack       *Stack
	template    assertions.Template
	annotations assertions.Annotations
	json        map[string]any
	outdir      string
}

// synthesize builds and synthesizes cfg with every function package faked.
func synthesize(cfg *config.Config) (*fixture, error) {
	dist, err := fakeDist(rotary.FunctionTypes()...)
	if err != nil {
		return nil, err
	}
	cfg.DistDir = dist
	out, err := tempDir()
	if err != nil {
		return nil, err
	}
	a := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(out)})
	st, err := NewStack(a, cfg)
	if err != nil {
		return nil, err
	}
	a.Synth(nil)
	f := &fixture{cfg: cfg, stack: st, outdir: out}
	f.template = assertions.Template_FromStack(st.Stack, nil)
	f.annotations = assertions.Annotations_FromStack(st.Stack)
	f.json = *f.template.ToJSON()
	return f, nil
}

type lazyFixture struct {
	once sync.Once
	f    *fixture
	err  error
	load func() (*fixture, error)
}

func (l *lazyFixture) get(t *testing.T) *fixture {
	t.Helper()
	cdktest.RequireNode(t)
	l.once.Do(func() { l.f, l.err = l.load() })
	if l.err != nil {
		t.Fatalf("synthesize fixture: %v", l.err)
	}
	return l.f
}

// example is infra/rotary.example.yaml, the config `make synth` uses.
var example = &lazyFixture{load: func() (*fixture, error) {
	cfg, err := config.Load("../rotary.example.yaml")
	if err != nil {
		return nil, err
	}
	return synthesize(cfg)
}}

// minimalYAML has no endpoint, no created secret for a database type, no
// multi-user type and no alarm emails; its watch has every option set.
const minimalYAML = `
account: "444455556666"
region: us-east-2
stackName: RotaryMinimal
watch:
  interval: 5m
  repair: true
  repairAfter: 30m
  overdueAfter: 2h
  perSecretAlarms: true
vpc:
  id: vpc-11112222333344445
  subnets:
    - {id: subnet-11112222333344445, availabilityZone: us-east-2a, routeTableId: rtb-11112222333344445}
databases:
  - {name: app, securityGroupId: sg-11112222333344445, port: 15432}
secrets:
  - name: api-token
    type: random-secret
    create: {template: {service: billing}}
    schedule: rate(12 hours)
    readers: []
  - name: app-db
    type: postgres-single-user
    arn: arn:aws:secretsmanager:us-east-2:444455556666:secret:app/db-AbCdEf
    database: app
    schedule: rate(1 day)
    readers: []
    repair: false
`

var minimal = &lazyFixture{load: func() (*fixture, error) {
	cfg, err := config.Parse([]byte(minimalYAML), ".")
	if err != nil {
		return nil, err
	}
	return synthesize(cfg)
}}

// rdsOnlyYAML has two rds-master secrets without databases: no login
// mode, no VPC; a pipeline deploys it with its own role.
const rdsOnlyYAML = `
account: "444455556666"
region: us-east-2
stackName: RotaryRdsOnly
deployRoleArn: arn:aws:iam::444455556666:role/pipeline/rotary-deploy
secrets:
  - {name: one, type: rds-master, arn: 'arn:aws:secretsmanager:us-east-2:444455556666:secret:one-AbCdEf', rdsDatabaseArn: 'arn:aws:rds:us-east-2:444455556666:db:one', schedule: rate(30 days), readers: []}
  - {name: two, type: rds-master, arn: 'arn:aws:secretsmanager:us-east-2:444455556666:secret:two-AbCdEf', rdsDatabaseArn: 'arn:aws:rds:us-east-2:444455556666:cluster:two', schedule: rate(30 days), readers: []}
`

var rdsOnly = &lazyFixture{load: func() (*fixture, error) {
	cfg, err := config.Parse([]byte(rdsOnlyYAML), ".")
	if err != nil {
		return nil, err
	}
	return synthesize(cfg)
}}

// fleetSize secrets need two watch schedules (at most 100 secrets each).
const fleetSize = 102

// fleetYAML is a fleet: fleetSize-2 postgres-single-user secrets on six
// hosts, staggered, and two random-secret secrets (no host).
func fleetYAML() string {
	var b strings.Builder
	b.WriteString(`
account: "777788889999"
region: eu-central-1
stackName: RotaryFleet
stagger: host
vpc:
  id: vpc-77778888999900001
  subnets: [{id: subnet-77778888999900001, availabilityZone: eu-central-1a}]
databases:
  - {name: fleet-pg, securityGroupId: sg-77778888999900001, port: 5432}
secrets:
`)
	for i := range fleetSize - 2 {
		schedule, window := "rate(30 days)", "1h"
		switch i % 10 {
		case 3:
			schedule = "cron(15 4 ? * MON *)"
		case 7:
			schedule, window = "rate(7 days)", "2h"
		}
		fmt.Fprintf(&b, "  - {name: app-%03d, type: postgres-single-user, arn: 'arn:aws:secretsmanager:eu-central-1:777788889999:secret:app-%03d-Ab12Cd', database: fleet-pg, host: db%d.example.internal, schedule: '%s', window: %s, readers: []}\n",
			i, i, i%6, schedule, window)
	}
	b.WriteString("  - {name: token-a, type: random-secret, create: {}, schedule: rate(1 day), repair: true, readers: []}\n")
	b.WriteString("  - {name: token-b, type: random-secret, create: {}, schedule: rate(1 day), readers: []}\n")
	return b.String()
}

var fleet = &lazyFixture{load: func() (*fixture, error) {
	cfg, err := config.Parse([]byte(fleetYAML()), ".")
	if err != nil {
		return nil, err
	}
	return synthesize(cfg)
}}

// check runs a CDK assertion; a failure becomes a test error.
var check = cdktest.Check

// resources returns the template's resources of one type by logical ID.
func (f *fixture) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range f.json["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

func props(res map[string]any) map[string]any {
	p, _ := res["Properties"].(map[string]any)
	return p
}

// only returns the logical ID of the single resource of typ matching pred.
func (f *fixture) only(t *testing.T, typ string, pred func(p map[string]any) bool) string {
	t.Helper()
	var ids []string
	for id, r := range f.resources(typ) {
		if pred(props(r)) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want exactly one %s matching, got %v", typ, ids)
	}
	return ids[0]
}

// functionID is the logical ID of the function of type typ.
func (f *fixture) functionID(t *testing.T, typ rotary.FunctionType) string {
	t.Helper()
	want := fmt.Sprintf("Rotary: rotates %s secrets", typ)
	return f.only(t, "AWS::Lambda::Function", func(p map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(p["Description"]), want)
	})
}

// roleID is the logical ID of the role the function of type typ runs as.
func (f *fixture) roleID(t *testing.T, typ rotary.FunctionType) string {
	t.Helper()
	fn := f.resources("AWS::Lambda::Function")[f.functionID(t, typ)]
	role := props(fn)["Role"].(map[string]any)["Fn::GetAtt"].([]any)
	return role[0].(string)
}

// statements returns the statements of every IAM policy attached to role.
func (f *fixture) statements(t *testing.T, roleID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range f.resources("AWS::IAM::Policy") {
		pp := props(p)
		attached := false
		for _, r := range pp["Roles"].([]any) {
			if canon(r) == canon(map[string]any{"Ref": roleID}) {
				attached = true
			}
		}
		if !attached {
			continue
		}
		for _, s := range pp["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, s.(map[string]any))
		}
	}
	return out
}

// allStatements returns every statement of every IAM policy in the template.
func (f *fixture) allStatements() []map[string]any {
	var out []map[string]any
	for _, p := range f.resources("AWS::IAM::Policy") {
		for _, s := range props(p)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, s.(map[string]any))
		}
	}
	return out
}

func bySid(stmts []map[string]any, sid string) map[string]any {
	for _, s := range stmts {
		if s["Sid"] == sid {
			return s
		}
	}
	return nil
}

// list normalizes an IAM field that is a value or a list of values.
func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// canon is a comparable JSON rendering of a template value.
func canon(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// canonSet renders values sorted, to compare lists regardless of order.
func canonSet(vs []any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = canon(v)
	}
	sort.Strings(out)
	return out
}

func ref(id string) map[string]any       { return map[string]any{"Ref": id} }
func getAtt(id, a string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, a}} }

// watchFunctionID is the logical ID of the watch function.
func (f *fixture) watchFunctionID(t *testing.T) string {
	t.Helper()
	return f.only(t, "AWS::Lambda::Function", func(p map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(p["Description"]), "Rotary watch: ")
	})
}

// watchRoleID is the logical ID of the role the watch runs as.
func (f *fixture) watchRoleID(t *testing.T) string {
	t.Helper()
	fn := f.resources("AWS::Lambda::Function")[f.watchFunctionID(t)]
	return props(fn)["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
}

// issuerFunctionID is the logical ID of the credential issuer's function.
func (f *fixture) issuerFunctionID(t *testing.T) string {
	t.Helper()
	return f.only(t, "AWS::Lambda::Function", func(p map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(p["Description"]), "Rotary credential issuer: ")
	})
}

// issuerRoleID is the logical ID of the role the issuer runs as.
func (f *fixture) issuerRoleID(t *testing.T) string {
	t.Helper()
	fn := f.resources("AWS::Lambda::Function")[f.issuerFunctionID(t)]
	return props(fn)["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
}

// watchScheduleResources are the schedules that invoke the watch.
func (f *fixture) watchScheduleResources(t *testing.T) map[string]map[string]any {
	t.Helper()
	watch := canon(getAtt(f.watchFunctionID(t), "Arn"))
	out := map[string]map[string]any{}
	for id, s := range f.resources("AWS::Scheduler::Schedule") {
		if canon(props(s)["Target"].(map[string]any)["Arn"]) == watch {
			out[id] = s
		}
	}
	return out
}

// schedulerRoleID is the logical ID of the role the watch's schedules use.
func (f *fixture) schedulerRoleID(t *testing.T) string {
	t.Helper()
	var ids []string
	for _, s := range f.watchScheduleResources(t) {
		id := props(s)["Target"].(map[string]any)["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
		if len(ids) == 0 || ids[0] != id {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want one scheduler role for the watch's schedules, got %v", ids)
	}
	return ids[0]
}
