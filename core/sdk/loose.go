package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Loose reads one config value as the config readers get it: from YAML,
// JSON or TOML (numbers of any Go numeric type or json.Number, strings,
// bools, lists) or from environment variables and flags (everything a
// string). It is the one value decoder of the host's config, its faults
// section, the scenario files and the plugins' config sections. Every
// error is a *ConfigError naming the key, with Problem in the form
// "is <value>, want <kind>".
//
// The zero Loose accepts numbers and bools written as strings ("42",
// "true"), as environment variables and flags give them.
type Loose struct {
	// Strict refuses numbers, bools and lists written as strings: a
	// scenario file is written by hand, and `nodes: "4"` there is a
	// mistake; a plugin's section has been through ApplySchema, which
	// made the strings of environment variables into values already.
	Strict bool
	// Fix is the Fix of the errors; empty gives one that says what to write.
	Fix string
	// ListSep, when not empty, splits a string given for a list at each
	// ListSep (environment variables and flags write lists as "a,b"); an
	// empty ListSep reads a string as a list of one.
	ListSep string
}

func (d Loose) fail(key string, v any, want, fix string) error {
	if d.Fix != "" {
		fix = d.Fix
	}
	return &ConfigError{Key: key, Problem: "is " + DescribeValue(v) + ", " + want, Fix: fix}
}

// String reads a string.
func (d Loose) String(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", d.fail(key, v, "want a string", "quote the value")
	}
	return s, nil
}

// Bool reads true or false; without Strict also "true", "yes", "1",
// "false", "no", "0" and "" (false) in any case.
func (d Loose) Bool(key string, v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if !d.Strict {
			switch strings.ToLower(strings.TrimSpace(b)) {
			case "true", "yes", "1":
				return true, nil
			case "false", "no", "0", "":
				return false, nil
			}
		}
	}
	return false, d.fail(key, v, "want true or false", "write true or false")
}

// Float reads a number; without Strict also a string holding a finite
// one. A NaN or infinite float (YAML's .nan, .inf) is read as it is, for
// the caller's range check to refuse as out of range.
func (d Loose) Float(key string, v any) (float64, error) {
	f, ok := d.float(v)
	if _, isString := v.(string); !ok || isString && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return 0, d.fail(key, v, "want a number", "write a number such as 3 or 0.5")
	}
	return f, nil
}

func (d Loose) float(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		if d.Strict {
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		return f, err == nil
	}
	return 0, false
}

// Int reads a whole number: any integer type, a float with no fraction,
// and without Strict a string holding a decimal integer.
func (d Loose) Int(key string, v any) (int64, error) {
	n, ok := d.int(v)
	if !ok {
		return 0, d.fail(key, v, "want a whole number", "write a whole number such as 10")
	}
	return n, nil
}

func (d Loose) int(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint:
		return int64(n), uint64(n) <= math.MaxInt64
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float32:
		return wholeFloat(float64(n))
	case float64:
		return wholeFloat(n)
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		f, err := n.Float64()
		if err != nil {
			return 0, false
		}
		return wholeFloat(f)
	case string:
		if d.Strict {
			return 0, false
		}
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// wholeFloat converts f when it is a whole number that fits an int64.
func wholeFloat(f float64) (int64, bool) {
	// -2^63 is an int64; 2^63 is not.
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// Duration reads a Go duration string ("300ms", "1h30m"). A bare number is
// refused in every mode: its unit would be a guess.
func (d Loose) Duration(key string, v any) (time.Duration, error) {
	const fix = `write a duration such as "500ms", "30s" or "2h"`
	s, ok := v.(string)
	if !ok {
		want := "want a duration string"
		if _, num := d.float(v); num {
			want += " (a bare number is not accepted: its unit would be a guess)"
		}
		return 0, d.fail(key, v, want, fix)
	}
	t, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, d.fail(key, v, "not a duration", fix)
	}
	return t, nil
}

// StringList reads a list of strings. Without Strict a string is a list of
// one, or split at ListSep when that is set.
func (d Loose) StringList(key string, v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		out := make([]string, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, Loose{Fix: d.Fix}.fail(fmt.Sprintf("%s[%d]", key, i), e, "want a string", "give each entry as a quoted string")
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		if d.Strict {
			break
		}
		if l == "" {
			return []string{}, nil
		}
		if d.ListSep != "" {
			return strings.Split(l, d.ListSep), nil
		}
		return []string{l}, nil
	}
	return nil, d.fail(key, v, "want a list of strings", `write it as ["a", "b"]`)
}

// sectionKey reports a list entry's mistake under the list's own key (a
// plugin's schema names keys, not entries), saying which entry it is.
func sectionKey(key string, err error) error {
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Key, key+"[") {
		return err
	}
	entry := strings.TrimSuffix(strings.TrimPrefix(ce.Key, key+"["), "]")
	return &ConfigError{Key: key, Problem: "entry " + entry + " " + ce.Problem, Fix: ce.Fix}
}

// DescribeValue renders a config value for an error message: strings
// quoted, sections and lists by what they are.
func DescribeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "empty"
	case string:
		return strconv.Quote(x)
	case map[string]any:
		return "a section"
	case []any, []string:
		return "a list"
	}
	return fmt.Sprint(v)
}
