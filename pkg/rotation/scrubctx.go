package rotation

import "context"

// NewScrubContext returns ctx with a scrubber of its own, for a function
// the engine does not drive (the credential issuer): every line logged with
// the returned context through NewScrubHandler, and every string ScrubText
// is given, has each value registered with AddSecrets replaced by Redacted,
// in every form a message may quote it in.
func NewScrubContext(ctx context.Context) context.Context {
	return withScrubber(ctx, newScrubber())
}

// AddSecrets registers values with ctx's scrubber (see NewScrubContext and
// the engine's invocations); it does nothing when ctx has none.
func AddSecrets(ctx context.Context, values ...string) {
	s := scrubberFrom(ctx)
	for _, v := range values {
		s.add(v)
	}
}

// ScrubText returns text with every value registered in ctx's scrubber
// replaced by Redacted.
func ScrubText(ctx context.Context, text string) string { return scrubberFrom(ctx).scrub(text) }
