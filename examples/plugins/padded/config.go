package padded

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-msg/strata/core/sdk"
)

// minBucket is the smallest bucket a config may name. Smaller buckets would
// hold little more than the message header.
const minBucket = 16

// Config is the layer's config section; its tags are the schema.
type Config struct {
	// Buckets are the sizes, in bytes, that every message on the wire is
	// padded to, as decimal strings in ascending order (the SDK's schema has
	// string lists but no integer lists).
	Buckets []string `json:"buckets" default:"256,1024,4096,16384,65536" desc:"message sizes in bytes that every message is padded to, ascending, as quoted numbers from 16 to 1048576, e.g. [\"256\", \"1024\"]"`

	// buckets is Buckets checked, set by Validate.
	buckets buckets
}

// Validate checks the bucket list; LoadConfig calls it.
func (c *Config) Validate() error {
	bs, err := parseBuckets(c.Buckets)
	c.buckets = bs
	return err
}

// defaultLargestBucket is the last default bucket.
const defaultLargestBucket = 65536

// buckets is a validated, strictly ascending list of message sizes.
type buckets []int

// parseBuckets validates a config's bucket list; an empty list is an error.
func parseBuckets(list []string) (buckets, error) {
	if len(list) == 0 {
		return nil, &sdk.ConfigError{Key: "buckets", Problem: "is empty", Fix: "name at least one size, or remove the key for the defaults"}
	}
	out := make(buckets, 0, len(list))
	for i, s := range list {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil {
			return nil, &sdk.ConfigError{Key: "buckets", Problem: fmt.Sprintf("entry %d (%q) is not a whole number of bytes", i, s), Fix: "write each size as a decimal number such as \"1024\""}
		}
		if n < minBucket || n > maxMessage {
			return nil, &sdk.ConfigError{Key: "buckets", Problem: fmt.Sprintf("entry %d (%d) is out of range", i, n), Fix: fmt.Sprintf("use sizes from %d to %d bytes", minBucket, maxMessage)}
		}
		if i > 0 && int(n) <= out[i-1] {
			return nil, &sdk.ConfigError{Key: "buckets", Problem: fmt.Sprintf("entry %d (%d) is not larger than entry %d (%d)", i, n, i-1, out[i-1]), Fix: "list the sizes in ascending order without repeats"}
		}
		out = append(out, int(n))
	}
	return out, nil
}

// fit returns the smallest bucket that holds n bytes, or false when n is
// larger than every bucket.
func (bs buckets) fit(n int) (int, bool) {
	i := sort.SearchInts(bs, n)
	if i == len(bs) {
		return 0, false
	}
	return bs[i], true
}

// largest returns the largest bucket, or 0 for an empty list.
func (bs buckets) largest() int {
	if len(bs) == 0 {
		return 0
	}
	return bs[len(bs)-1]
}
