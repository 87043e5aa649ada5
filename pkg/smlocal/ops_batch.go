package smlocal

import (
	"errors"
	"slices"
	"strings"
)

// maxBatch is the most secrets BatchGetSecretValue returns in one call.
const maxBatch = 20

// batchGetSecretValue returns the AWSCURRENT value of up to 20 secrets,
// named in SecretIdList or chosen by Filters (ListSecrets' filters, paged
// by MaxResults and NextToken), never both. A secret that cannot be read
// is reported in Errors, with the exception GetSecretValue would have
// returned for it, and the call still succeeds, as AWS documents.
func (s *Server) batchGetSecretValue(body []byte) (any, error) {
	var in struct {
		SecretIdList []string
		Filters      []filter
		MaxResults   *int64
		NextToken    *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	switch {
	case len(in.SecretIdList) > 0 && len(in.Filters) > 0:
		return nil, errorf(excInvalidParameter, "pass either SecretIdList or Filters, not both")
	case len(in.SecretIdList) == 0 && len(in.Filters) == 0:
		return nil, errorf(excInvalidParameter, "pass SecretIdList (1 to %d secret names or ARNs) or Filters", maxBatch)
	case len(in.SecretIdList) > maxBatch:
		return nil, errorf(excInvalidParameter, "SecretIdList has %d entries; BatchGetSecretValue returns at most %d secrets per call", len(in.SecretIdList), maxBatch)
	case len(in.SecretIdList) > 0 && (in.MaxResults != nil || in.NextToken != nil):
		return nil, errorf(excInvalidParameter, "MaxResults and NextToken go with Filters, not with SecretIdList")
	case in.MaxResults != nil && (*in.MaxResults < 1 || *in.MaxResults > maxBatch):
		return nil, errorf(excInvalidParameter, "MaxResults must be from 1 to %d, got %d", maxBatch, *in.MaxResults)
	}
	type apiErr struct {
		SecretId  string
		ErrorCode string
		Message   string
	}
	out := struct {
		SecretValues []map[string]any
		Errors       []apiErr `json:",omitempty"`
		NextToken    string   `json:",omitempty"`
	}{SecretValues: []map[string]any{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := in.SecretIdList
	if len(in.Filters) > 0 {
		var secs []*storedSecret
		now := s.now()
		for _, sec := range s.st.Secrets {
			if sec.isDeleted() && !sec.DeletionDate.After(now) {
				continue
			}
			keep := true
			for _, f := range in.Filters {
				ok, err := matchFilter(sec, s.opts.Region, f)
				if err != nil {
					return nil, err
				}
				keep = keep && ok
			}
			if keep && !sec.isDeleted() {
				secs = append(secs, sec)
			}
		}
		slices.SortFunc(secs, func(a, b *storedSecret) int {
			if c := a.Created.Compare(b.Created); c != 0 {
				return c
			}
			return strings.Compare(a.ARN, b.ARN)
		})
		size := int64(maxBatch)
		if in.MaxResults != nil {
			size = *in.MaxResults
		}
		lo, hi, next, err := page(len(secs), &size, in.NextToken)
		if err != nil {
			return nil, err
		}
		out.NextToken = next
		ids = nil
		for _, sec := range secs[lo:hi] {
			ids = append(ids, sec.ARN)
		}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		v, err := s.valueLocked(&id, nil, nil)
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			out.Errors = append(out.Errors, apiErr{SecretId: id, ErrorCode: ae.Type, Message: ae.Message})
		case err != nil:
			return nil, err
		case !seen[v["ARN"].(string)]:
			seen[v["ARN"].(string)] = true
			out.SecretValues = append(out.SecretValues, v)
		}
	}
	return out, nil
}
