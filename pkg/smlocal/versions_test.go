package smlocal

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

func put(t testing.TB, c *secretsmanager.Client, id, tok, value string, stages ...string) {
	t.Helper()
	in := &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), ClientRequestToken: aws.String(tok), SecretString: aws.String(value)}
	if stages != nil {
		in.VersionStages = stages
	}
	if _, err := c.PutSecretValue(context.Background(), in); err != nil {
		t.Fatalf("PutSecretValue %s: %v", tok, err)
	}
}

func stagesOf(t testing.TB, c *secretsmanager.Client, id string) map[string][]string {
	t.Helper()
	out, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	for _, s := range out.VersionIdsToStages {
		slices.Sort(s)
	}
	return out.VersionIdsToStages
}

func TestPutSecretValueMovesCurrentAndPrevious(t *testing.T) {
	_, c := newServer(t, Options{})
	createSecret(t, c, "labels", "v0")
	_, v0 := current(t, c, "labels")
	put(t, c, "labels", token(1), "v1")
	put(t, c, "labels", token(2), "v2")
	got := stagesOf(t, c, "labels")
	want := map[string][]string{token(2): {"AWSCURRENT"}, token(1): {"AWSPREVIOUS"}}
	if len(got) != 2 || !slices.Equal(got[token(2)], want[token(2)]) || !slices.Equal(got[token(1)], want[token(1)]) {
		t.Fatalf("VersionIdsToStages = %v, want %v (version %s deprecated)", got, want, v0)
	}
}

func TestPutSecretValueIsIdempotentForSameTokenAndValue(t *testing.T) {
	_, c := newServer(t, Options{})
	arn := createSecret(t, c, "idem", "v0")
	put(t, c, "idem", token(1), "v1")
	put(t, c, "idem", token(2), "v2")
	put(t, c, "idem", token(1), "v1") // a retry: nothing changes
	if v, ver := current(t, c, "idem"); v != "v2" || ver != token(2) {
		t.Fatalf("after the retry AWSCURRENT is %s (%s), want v2 unchanged", ver, fp(v))
	}
	_, err := c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String("idem"), ClientRequestToken: aws.String(token(1)), SecretString: aws.String("other")})
	wantAPIError(t, err, "ResourceExistsException", "You can't use ClientRequestToken "+token(1)+" because that value is already in use for a version of secret "+arn+".")
}

func TestPutSecretValueRecordsRotationToken(t *testing.T) {
	srv, c := newServer(t, Options{})
	arn := createSecret(t, c, "rt", "v0")
	_, err := c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("rt"), ClientRequestToken: aws.String(token(1)), SecretString: aws.String("v1"),
		VersionStages: []string{"AWSPENDING"}, RotationToken: aws.String("rotation-token-1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	got := srv.st.Secrets[arn].Versions[token(1)].RotationToken
	srv.mu.Unlock()
	if got != "rotation-token-1" {
		t.Fatalf("recorded RotationToken = %q, want rotation-token-1", got)
	}
	if v, _ := current(t, c, "rt"); v != "v0" {
		t.Fatalf("putting AWSPENDING changed AWSCURRENT")
	}
}

func TestDeprecatedVersionsHiddenUnlessIncludeDeprecated(t *testing.T) {
	_, c := newServer(t, Options{})
	createSecret(t, c, "dep", "v0")
	put(t, c, "dep", token(1), "v1")
	put(t, c, "dep", token(2), "v2")
	count := func(include bool) int {
		t.Helper()
		out, err := c.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("dep"), IncludeDeprecated: aws.Bool(include)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Versions)
	}
	if n := count(false); n != 2 {
		t.Errorf("without IncludeDeprecated: %d versions, want 2", n)
	}
	if n := count(true); n != 3 {
		t.Errorf("with IncludeDeprecated: %d versions, want 3", n)
	}
}

func TestListSecretVersionIdsPaginates(t *testing.T) {
	_, c := newServer(t, Options{})
	createSecret(t, c, "pages", "v0")
	for i := 1; i <= 4; i++ {
		put(t, c, "pages", token(i), "v", "L"+strconv.Itoa(i))
	}
	var ids []string
	p := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("pages"), MaxResults: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range out.Versions {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	if len(ids) != 5 || pages != 3 {
		t.Fatalf("got %d versions in %d pages, want 5 in 3", len(ids), pages)
	}
	_, err := c.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("pages"), NextToken: aws.String("bad!")})
	var inv *types.InvalidNextTokenException
	if !errors.As(err, &inv) {
		t.Fatalf("bad NextToken: %v, want InvalidNextTokenException", err)
	}
}

func TestUpdateSecretVersionStageRules(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) *secretsmanager.Client {
		t.Helper()
		_, c := newServer(t, Options{})
		createSecret(t, c, "uvs", "v0")
		put(t, c, "uvs", token(1), "v1")               // AWSCURRENT on 1
		put(t, c, "uvs", token(2), "v2", "AWSPENDING") // pending on 2
		return c
	}
	move := func(c *secretsmanager.Client, stage, to, from string) error {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("uvs"), VersionStage: aws.String(stage)}
		if to != "" {
			in.MoveToVersionId = aws.String(to)
		}
		if from != "" {
			in.RemoveFromVersionId = aws.String(from)
		}
		_, err := c.UpdateSecretVersionStage(ctx, in)
		return err
	}
	t.Run("moving an attached label needs RemoveFromVersionId", func(t *testing.T) {
		c := setup(t)
		err := move(c, "AWSCURRENT", token(2), "")
		wantAPIError(t, err, "InvalidParameterException", "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version "+token(1)+", so you must explicitly reference that version in RemoveFromVersionId.")
	})
	t.Run("moving AWSCURRENT moves AWSPREVIOUS to the old version", func(t *testing.T) {
		c := setup(t)
		if err := move(c, "AWSCURRENT", token(2), token(1)); err != nil {
			t.Fatal(err)
		}
		got := stagesOf(t, c, "uvs")
		if !slices.Equal(got[token(2)], []string{"AWSCURRENT", "AWSPENDING"}) || !slices.Equal(got[token(1)], []string{"AWSPREVIOUS"}) {
			t.Fatalf("VersionIdsToStages = %v", got)
		}
		if v, _ := current(t, c, "uvs"); v != "v2" {
			t.Fatalf("AWSCURRENT value is %s, want v2's", fp(v))
		}
	})
	t.Run("omitting MoveToVersionId removes the label", func(t *testing.T) {
		c := setup(t)
		if err := move(c, "AWSPENDING", "", token(2)); err != nil {
			t.Fatal(err)
		}
		if _, ok := stagesOf(t, c, "uvs")[token(2)]; ok {
			t.Fatalf("version 2 still labeled")
		}
	})
	t.Run("RemoveFromVersionId must hold the label", func(t *testing.T) {
		c := setup(t)
		wantAPIError(t, move(c, "AWSPENDING", "", token(1)), "InvalidParameterException", "is not attached to version")
	})
	t.Run("unknown MoveToVersionId", func(t *testing.T) {
		c := setup(t)
		wantAPIError(t, move(c, "AWSPENDING", token(9), token(2)), "ResourceNotFoundException", "VersionId: "+token(9))
	})
	t.Run("AWSCURRENT can't be removed without moving", func(t *testing.T) {
		c := setup(t)
		wantAPIError(t, move(c, "AWSCURRENT", "", token(1)), "InvalidParameterException", "AWSCURRENT")
	})
}

func TestGetSecretValueRules(t *testing.T) {
	srv, c := newServer(t, Options{})
	ctx := context.Background()
	arn := createSecret(t, c, "gsv", "v0")
	put(t, c, "gsv", token(1), "v1")
	// The valueless placeholder RotateSecret creates.
	srv.mu.Lock()
	sec := srv.st.Secrets[arn]
	sec.Versions[token(2)] = &storedVersion{ID: token(2), Created: srv.now()}
	sec.attach("AWSPENDING", token(2))
	srv.mu.Unlock()
	for _, tc := range []struct {
		name           string
		version, stage string
		want           string // value, or "" with code
		code, msg      string
	}{
		{name: "neither is AWSCURRENT", want: "v1"},
		{name: "by stage", stage: "AWSPREVIOUS", want: "v0"},
		{name: "by version", version: token(1), want: "v1"},
		{name: "both naming the same version", version: token(1), stage: "AWSCURRENT", want: "v1"},
		{name: "both naming different versions", version: token(1), stage: "AWSPREVIOUS", code: "InvalidRequestException", msg: msgStageVersionMismatch},
		{name: "missing label", stage: "NOPE", code: "ResourceNotFoundException", msg: "Secrets Manager can't find the specified secret value for staging label: NOPE"},
		{name: "missing version", version: token(7), code: "ResourceNotFoundException", msg: "Secrets Manager can't find the specified secret value for VersionId: " + token(7)},
		{name: "valueless placeholder by stage", stage: "AWSPENDING", code: "ResourceNotFoundException", msg: "Secrets Manager can't find the specified secret value for staging label: AWSPENDING"},
		{name: "valueless placeholder by version", version: token(2), code: "ResourceNotFoundException", msg: "VersionId: " + token(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &secretsmanager.GetSecretValueInput{SecretId: aws.String("gsv")}
			if tc.version != "" {
				in.VersionId = aws.String(tc.version)
			}
			if tc.stage != "" {
				in.VersionStage = aws.String(tc.stage)
			}
			out, err := c.GetSecretValue(ctx, in)
			if tc.code != "" {
				wantAPIError(t, err, tc.code, tc.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(out.SecretString); got != tc.want {
				t.Fatalf("value %s, want %s", fp(got), fp(tc.want))
			}
		})
	}
}

func TestPutSecretValueFillsThePlaceholder(t *testing.T) {
	srv, c := newServer(t, Options{})
	arn := createSecret(t, c, "fill", "v0")
	srv.mu.Lock()
	sec := srv.st.Secrets[arn]
	sec.Versions[token(2)] = &storedVersion{ID: token(2), Created: srv.now()}
	sec.attach("AWSPENDING", token(2))
	srv.mu.Unlock()
	put(t, c, "fill", token(2), "v2", "AWSPENDING")
	out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("fill"), VersionStage: aws.String("AWSPENDING")})
	if err != nil || aws.ToString(out.SecretString) != "v2" || aws.ToString(out.VersionId) != token(2) {
		t.Fatalf("AWSPENDING after filling the placeholder: %v %v", out, err)
	}
}

func TestUnlabeledVersionsBeyond100ArePrunedButNotYoungOnes(t *testing.T) {
	clk := newFakeClock()
	_, c := newServer(t, Options{Clock: clk.Now})
	createSecret(t, c, "prune", "v0")
	for i := 1; i <= 105; i++ {
		clk.Advance(time.Second)
		put(t, c, "prune", token(i), "v"+strconv.Itoa(i))
	}
	countAll := func() int {
		t.Helper()
		n := 0
		p := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("prune"), IncludeDeprecated: aws.Bool(true)})
		for p.HasMorePages() {
			out, err := p.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n += len(out.Versions)
		}
		return n
	}
	if n := countAll(); n != 106 {
		t.Fatalf("%d versions kept, want all 106: none is 24 hours old", n)
	}
	clk.Advance(25 * time.Hour)
	put(t, c, "prune", token(200), "v200")
	if n := countAll(); n != 100 {
		t.Fatalf("%d versions kept, want 100", n)
	}
	for _, tc := range []struct {
		id   string
		kept bool
	}{{token(6), false}, {token(7), true}} {
		_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("prune"), VersionId: aws.String(tc.id)})
		if (err == nil) != tc.kept {
			t.Errorf("version %s: GetSecretValue err = %v, want kept=%v (the oldest unlabeled versions go first)", tc.id, err, tc.kept)
		}
	}
	got := stagesOf(t, c, "prune")
	if !slices.Equal(got[token(200)], []string{"AWSCURRENT"}) || !slices.Equal(got[token(105)], []string{"AWSPREVIOUS"}) {
		t.Fatalf("labels after pruning: %v", got)
	}
}

func TestFirstValueAlwaysGetsAWSCURRENT(t *testing.T) {
	_, c := newServer(t, Options{})
	if _, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("empty")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("empty")})
	wantAPIError(t, err, "ResourceNotFoundException", "staging label: AWSCURRENT")
	put(t, c, "empty", token(1), "v1", "AWSPENDING")
	if got := stagesOf(t, c, "empty"); !slices.Equal(got[token(1)], []string{"AWSCURRENT", "AWSPENDING"}) {
		t.Fatalf("labels of the first version: %v, want AWSCURRENT added", got)
	}
}

func TestTooManyLabelsOrTagsIsLimitExceeded(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	createSecret(t, c, "limits", "v")
	var stages []string
	for i := range 21 {
		stages = append(stages, "L"+strconv.Itoa(i))
	}
	_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("limits"), ClientRequestToken: aws.String(token(1)), SecretString: aws.String("w"), VersionStages: stages})
	wantAPIError(t, err, "LimitExceededException", "at most 20 staging labels")
	var tags []types.Tag
	for i := range 50 {
		tags = append(tags, types.Tag{Key: aws.String("k" + strconv.Itoa(i)), Value: aws.String("v")})
	}
	if _, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("limits"), Tags: tags}); err != nil {
		t.Fatal(err)
	}
	_, err = c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("limits"), Tags: []types.Tag{{Key: aws.String("one-more"), Value: aws.String("v")}}})
	wantAPIError(t, err, "LimitExceededException", "at most 50 tags")
}

// TestStagingLabelLength: AWS takes staging labels of 1 to 256 characters;
// PutSecretValue stored an empty or longer one, and UpdateSecretVersionStage
// a longer one. Found by FuzzRequest's state checks.
func TestStagingLabelLength(t *testing.T) {
	_, c := newServer(t, Options{})
	ctx := context.Background()
	createSecret(t, c, "labels", "v1")
	long := strings.Repeat("é", 257)
	for _, stages := range [][]string{{""}, {long}, {"AWSCURRENT", ""}} {
		_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("labels"), ClientRequestToken: aws.String(token(2)),
			SecretString: aws.String("v2"), VersionStages: stages})
		wantAPIError(t, err, "InvalidParameterException", "1 to 256 characters")
	}
	_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("labels"), VersionStage: aws.String(long),
		MoveToVersionId: aws.String(mustVersion(t, c, "labels"))})
	wantAPIError(t, err, "InvalidParameterException", "1 to 256 characters")
	if got := stagesOf(t, c, "labels"); len(got) != 1 {
		t.Fatalf("a refused label changed the versions: %v", got)
	}
	put(t, c, "labels", token(3), "v3", strings.Repeat("é", 256))
}

func mustVersion(t *testing.T, c *secretsmanager.Client, id string) string {
	t.Helper()
	_, v := current(t, c, id)
	return v
}
