package report

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/strata-msg/strata/host/compare"
)

// WriteJSON writes the Report as it is, the raw results of every run, as
// indented JSON. Fields come in the order compare.Report declares them
// and map keys sorted, so the same Report always gives the same bytes;
// the output decodes back into an equal compare.Report.
func WriteJSON(w io.Writer, r *compare.Report) error {
	if r == nil {
		return fmt.Errorf("report: nil Report")
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("report: writing JSON: %w", err)
	}
	return nil
}
