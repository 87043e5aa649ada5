package main

import (
	"flag"
	"fmt"

	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
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

// directory returns the principals the flags name, with the stack's own key
// as localstack.LocalPrincipalARN unless a flag names that key too.
func (f *principalFlags) directory() (*localauth.Directory, error) {
	d := localauth.New(localauth.Principal{AccessKeyID: smlocal.LocalAccessKeyID, SecretAccessKey: smlocal.LocalSecretAccessKey, ARN: localstack.LocalPrincipalARN()})
	for _, v := range f.list {
		p, err := localauth.ParsePrincipal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		d.Add(p)
	}
	return d, nil
}
