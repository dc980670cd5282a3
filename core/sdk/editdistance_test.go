package sdk_test

import (
	"testing"

	"github.com/strata-msg/strata/core/sdk"
)

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"listen", "listen", 0},
		{"listn", "listen", 1},
		{"metrics.listn", "metrics.listen", 1},
		{"levl", "level", 1},
		{"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		if got := sdk.EditDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := sdk.EditDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}
