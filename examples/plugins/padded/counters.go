package padded

import "github.com/strata-msg/strata/core/sdk"

// codecStats are the counters padded adds to the direct skeleton's, by
// their Health names.
type codecStats struct {
	PaddingBytes sdk.Counter `counter:"padding_bytes_sent"`
}
