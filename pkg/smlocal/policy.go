package smlocal

import (
	"encoding/json"
	"strings"
)

// Resource policies: stored and served as AWS does (GetResourcePolicy,
// PutResourcePolicy, DeleteResourcePolicy), so that `rotary audit` reads a
// secret's readers from its policy on the local stack as on AWS. The local
// stack does not enforce them: nothing there checks who a caller is, and
// the audit trail is how a read outside the policy is found.

const (
	excMalformedPolicy = "MalformedPolicyDocumentException"
	excPublicPolicy    = "PublicPolicyException"
	maxPolicyLength    = 20480
)

type policyDoc struct {
	Version   string
	Statement json.RawMessage
}

type policyStatement struct {
	Effect    string
	Principal json.RawMessage
	Condition map[string]json.RawMessage
}

// checkPolicy refuses what AWS refuses: not JSON, no Statement, and with
// block, a policy that grants access to everyone.
func checkPolicy(policy string, block bool) error {
	if n := len(policy); n < 1 || n > maxPolicyLength {
		return errorf(excInvalidParameter, "ResourcePolicy must be 1 to %d characters long, got %d", maxPolicyLength, n)
	}
	var doc policyDoc
	if err := json.Unmarshal([]byte(policy), &doc); err != nil || len(doc.Statement) == 0 {
		return errorf(excMalformedPolicy, "This resource policy contains a syntax error: it must be a JSON policy document with Version and Statement.")
	}
	var stmts []policyStatement
	if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
		var one policyStatement
		if err := json.Unmarshal(doc.Statement, &one); err != nil {
			return errorf(excMalformedPolicy, "This resource policy contains a syntax error: Statement must be an object or a list of objects.")
		}
		stmts = []policyStatement{one}
	}
	for _, st := range stmts {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return errorf(excMalformedPolicy, "This resource policy contains a syntax error: every statement's Effect must be Allow or Deny.")
		}
		if block && st.Effect == "Allow" && len(st.Condition) == 0 && isEveryone(st.Principal) {
			return errorf(excPublicPolicy, "This resource policy contains a public policy that grants access to everyone (Principal \"*\" without a condition); BlockPublicPolicy refuses it.")
		}
	}
	return nil
}

func isEveryone(p json.RawMessage) bool {
	s := strings.ReplaceAll(string(p), " ", "")
	return s == `"*"` || s == `{"AWS":"*"}` || s == `{"AWS":["*"]}`
}

func (s *Server) getResourcePolicy(body []byte) (any, error) {
	var in struct{ SecretId *string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, false)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"ARN": sec.ARN, "Name": sec.Name}
	if sec.ResourcePolicy != "" {
		out["ResourcePolicy"] = sec.ResourcePolicy
	}
	return out, nil
}

func (s *Server) putResourcePolicy(body []byte) (any, error) {
	var in struct {
		SecretId          *string
		ResourcePolicy    *string
		BlockPublicPolicy *bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ResourcePolicy == nil {
		return nil, errorf(excInvalidParameter, "ResourcePolicy is required; pass the policy document as JSON text")
	}
	if err := checkPolicy(*in.ResourcePolicy, in.BlockPublicPolicy != nil && *in.BlockPublicPolicy); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	sec.ResourcePolicy = *in.ResourcePolicy
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name}, nil
}

func (s *Server) deleteResourcePolicy(body []byte) (any, error) {
	var in struct{ SecretId *string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	sec.ResourcePolicy = ""
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name}, nil
}
