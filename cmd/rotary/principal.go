package main

import (
	"flag"
	"fmt"

	"github.com/rotary-secrets/rotary/pkg/localauth"
)

// principalFlags is rotary local's --principal: the local access keys and
// who they are (pkg/localauth). Kept in its own file: the audit trail's
// CloudTrail events name the same principals.
type principalFlags struct{ list listFlag }

func addPrincipalFlags(fs *flag.FlagSet) *principalFlags {
	f := &principalFlags{}
	fs.Var(&f.list, "principal", "KEY:SECRET=ARN (or KEY=ARN): a local access key and the IAM principal it stands for; a key with its secret may sign requests to the local function URLs (repeatable)")
	return f
}

// parse returns the principals the flags name.
func (f *principalFlags) parse() ([]localauth.Principal, error) {
	var out []localauth.Principal
	for _, v := range f.list {
		p, err := localauth.ParsePrincipal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		out = append(out, p)
	}
	return out, nil
}
