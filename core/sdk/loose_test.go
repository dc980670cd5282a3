package sdk_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk"
)

func TestLoose(t *testing.T) {
	loose, strict := sdk.Loose{}, sdk.Loose{Strict: true}
	tests := []struct {
		name    string
		d       sdk.Loose
		read    func(sdk.Loose, any) (any, error)
		in      any
		want    any
		problem string // a part of the error's Problem; "" means no error
	}{
		{"int", loose, asInt, 42, int64(42), ""},
		{"int from uint64", loose, asInt, uint64(7), int64(7), ""},
		{"int from uint64 too big", loose, asInt, uint64(math.MaxUint64), nil, "want a whole number"},
		{"int from whole float", loose, asInt, 3.0, int64(3), ""},
		{"int from fraction", loose, asInt, 2.5, nil, "want a whole number"},
		{"int from json.Number", loose, asInt, json.Number("1e3"), int64(1000), ""},
		{"int from string", loose, asInt, " 12 ", int64(12), ""},
		{"int from string, strict", strict, asInt, "12", nil, `is "12", want a whole number`},
		{"int from 2^63", loose, asInt, float64(1 << 63), nil, "want a whole number"},
		{"float", loose, asFloat, float32(0.5), 0.5, ""},
		{"float from string", loose, asFloat, "0.25", 0.25, ""},
		{"float NaN", loose, asFloat, "NaN", nil, "want a number"},
		{"float from string, strict", strict, asFloat, "0.25", nil, "want a number"},
		{"float from bool", loose, asFloat, true, nil, "is true, want a number"},
		{"bool", strict, asBool, true, true, ""},
		{"bool from yes", loose, asBool, "Yes", true, ""},
		{"bool from 0", loose, asBool, "0", false, ""},
		{"bool from string, strict", strict, asBool, "true", nil, "want true or false"},
		{"bool from number", loose, asBool, 1, nil, "want true or false"},
		{"string", strict, asString, "x", "x", ""},
		{"string from number", loose, asString, 5, nil, "is 5, want a string"},
		{"string from list", loose, asString, []any{"a"}, nil, "is a list, want a string"},
		{"string from section", loose, asString, map[string]any{}, nil, "is a section"},
		{"duration", strict, asDuration, "1m30s", 90 * time.Second, ""},
		{"duration bare number", loose, asDuration, 60, nil, "bare number"},
		{"duration text", loose, asDuration, "soon", nil, `is "soon", not a duration`},
		{"list", loose, asList, []any{"a", "b"}, []string{"a", "b"}, ""},
		{"list of one", loose, asList, "a,b", []string{"a,b"}, ""},
		{"list split", sdk.Loose{ListSep: ","}, asList, "a,b", []string{"a", "b"}, ""},
		{"list empty string", loose, asList, "", []string{}, ""},
		{"list with a number", loose, asList, []any{"a", 1}, nil, "is 1, want a string"},
		{"list from number", loose, asList, 3, nil, "want a list of strings"},
		{"list from string, strict", strict, asList, "a", nil, "want a list of strings"},
		{"float infinity left to the range check", strict, asFloat, math.Inf(1), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read(tt.d, tt.in)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if tt.want == nil {
					return
				}
				if !equal(got, tt.want) {
					t.Fatalf("got %#v, want %#v", got, tt.want)
				}
				return
			}
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || !strings.HasPrefix(ce.Key, "k") || !strings.Contains(ce.Problem, tt.problem) || ce.Fix == "" {
				t.Fatalf("got %v, %v; want a ConfigError for k with %q and a fix", got, err, tt.problem)
			}
		})
	}
}

func TestLooseFix(t *testing.T) {
	_, err := sdk.Loose{Fix: "do this"}.Int("k", "x")
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Fix != "do this" {
		t.Fatalf("got %v, want the given fix", err)
	}
}

func asInt(d sdk.Loose, v any) (any, error)      { return wrap(d.Int("k", v)) }
func asFloat(d sdk.Loose, v any) (any, error)    { return wrap(d.Float("k", v)) }
func asBool(d sdk.Loose, v any) (any, error)     { return wrap(d.Bool("k", v)) }
func asString(d sdk.Loose, v any) (any, error)   { return wrap(d.String("k", v)) }
func asDuration(d sdk.Loose, v any) (any, error) { return wrap(d.Duration("k", v)) }
func asList(d sdk.Loose, v any) (any, error)     { return wrap(d.StringList("k", v)) }

func wrap[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

func equal(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// FuzzLoose feeds arbitrary text, as an environment variable or a quoted
// YAML value gives it, and the number it may parse as, to every reader in
// both modes: none may panic, every error is a ConfigError naming the key,
// strict mode accepts no more than the default mode, and what both accept
// they read alike.
func FuzzLoose(f *testing.F) {
	for _, s := range []string{"12", " 7 ", "1e3", "2.5", "-0", "NaN", "true", "no", "30s", "1h2m", "a,b", "", "9223372036854775808"} {
		f.Add(s, 1.5)
	}
	f.Fuzz(func(t *testing.T, s string, x float64) {
		readers := []func(sdk.Loose, any) (any, error){asInt, asFloat, asBool, asDuration, asString, asList}
		for _, v := range []any{s, x, int64(x), json.Number(s), []any{s, x}} {
			for i, read := range readers {
				var got [3]any
				var errs [3]error
				for j, d := range []sdk.Loose{{}, {Strict: true}, {ListSep: ","}} {
					got[j], errs[j] = read(d, v)
					var ce *sdk.ConfigError
					if errs[j] != nil && (!errors.As(errs[j], &ce) || !strings.HasPrefix(ce.Key, "k") || ce.Problem == "") {
						t.Fatalf("reader %d on %#v: error %v is not a ConfigError naming k", i, v, errs[j])
					}
				}
				if errs[1] == nil && (errs[0] != nil || !equal(got[0], got[1])) {
					t.Fatalf("reader %d on %#v: strict mode read %v, default mode %v, %v", i, v, got[1], got[0], errs[0])
				}
			}
		}
	})
}
