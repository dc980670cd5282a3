package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// ConfigError is a bad configuration value. Key is the key's path inside
// the section being checked (the host prefixes the section's own path, such
// as "layers.p2p.config."), Problem says what is wrong and Fix what to do.
type ConfigError struct {
	Key     string
	Problem string
	Fix     string
}

// Error implements error.
func (e *ConfigError) Error() string {
	msg := fmt.Sprintf("config key %q: %s", e.Key, e.Problem)
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// WithPrefix returns a copy of e whose key is prefixed by p and a dot.
func (e *ConfigError) WithPrefix(p string) *ConfigError {
	c := *e
	if c.Key == "" {
		c.Key = p
	} else if p != "" {
		c.Key = p + "." + c.Key
	}
	return &c
}

// toStatus turns a layer error into a gRPC status error. A ConfigError
// travels as a structured detail (commonv1.ConfigErrorDetail), so that the
// host rebuilds it on its side of the process boundary and names the key.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		st, derr := status.New(codes.InvalidArgument, ce.Error()).WithDetails(&commonv1.ConfigErrorDetail{Key: ce.Key, Problem: ce.Problem, Fix: ce.Fix})
		if derr != nil {
			return status.Error(codes.InvalidArgument, ce.Error())
		}
		return st.Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// RemoteError is an error a plugin returned across the process boundary:
// its text, without gRPC's "rpc error: code = ... desc =" wrapping, and its
// gRPC code.
type RemoteError struct {
	Code    codes.Code
	Message string
}

// Error implements error.
func (e *RemoteError) Error() string { return e.Message }

// GRPCStatus lets status.Code and status.FromError see the code.
func (e *RemoteError) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// fromStatus undoes toStatus on the host side: a ConfigError comes back as
// one, any other plugin error as a RemoteError with the plugin's text.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if cd, ok := d.(*commonv1.ConfigErrorDetail); ok {
			return &ConfigError{Key: cd.GetKey(), Problem: cd.GetProblem(), Fix: cd.GetFix()}
		}
	}
	return &RemoteError{Code: st.Code(), Message: st.Message()}
}

// String, Int, Bool, Duration, StringList and Float build ConfigField
// entries for a plugin's PluginInfo.config.

// String declares a string key.
func String(name, description, def string) *commonv1.ConfigField {
	return field(name, commonv1.FieldType_FIELD_TYPE_STRING, description, def)
}

// Int declares an integer key with inclusive bounds.
func Int(name, description string, def, lo, hi int64) *commonv1.ConfigField {
	f := field(name, commonv1.FieldType_FIELD_TYPE_INT, description, def)
	f.HasBounds, f.Min, f.Max = true, float64(lo), float64(hi)
	return f
}

// Bool declares a boolean key.
func Bool(name, description string, def bool) *commonv1.ConfigField {
	return field(name, commonv1.FieldType_FIELD_TYPE_BOOL, description, def)
}

// Duration declares a duration key ("30s").
func Duration(name, description string, def time.Duration) *commonv1.ConfigField {
	return field(name, commonv1.FieldType_FIELD_TYPE_DURATION, description, def.String())
}

// StringList declares a list-of-strings key.
func StringList(name, description string, def []string) *commonv1.ConfigField {
	if def == nil {
		def = []string{}
	}
	return field(name, commonv1.FieldType_FIELD_TYPE_STRING_LIST, description, def)
}

// Float declares a floating-point key with inclusive bounds.
func Float(name, description string, def, lo, hi float64) *commonv1.ConfigField {
	f := field(name, commonv1.FieldType_FIELD_TYPE_FLOAT, description, def)
	f.HasBounds, f.Min, f.Max = true, lo, hi
	return f
}

// Required marks f as required (it then has no default) and returns it.
func Required(f *commonv1.ConfigField) *commonv1.ConfigField {
	f.Required = true
	f.DefaultJson = ""
	return f
}

// OneOf restricts a string key to the given values and returns it.
func OneOf(f *commonv1.ConfigField, values ...string) *commonv1.ConfigField {
	f.Allowed = values
	return f
}

func field(name string, t commonv1.FieldType, description string, def any) *commonv1.ConfigField {
	b, err := json.Marshal(def)
	if err != nil {
		b = nil
	}
	return &commonv1.ConfigField{Name: name, Type: t, Description: description, DefaultJson: string(b)}
}

// ApplySchema checks a config section against a plugin's ConfigField list
// and returns it with defaults filled in. Unknown keys (with "did you
// mean"), missing required keys, wrong types and out-of-range values are
// ConfigErrors naming the key. Values are read by Loose; durations are
// checked and kept as strings, and a string given for a list is split at
// commas (environment variables and flags write lists so). It is what the
// host runs before it hands a section to Configure.
func ApplySchema(fields []*commonv1.ConfigField, section map[string]any) (map[string]any, error) {
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		names = append(names, f.GetName())
	}
	if err := knownKeys(section, names); err != nil {
		return nil, err
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		v, present := section[f.GetName()]
		if !present || v == nil {
			if f.GetRequired() {
				return nil, &ConfigError{Key: f.GetName(), Problem: "is required", Fix: "set it: " + f.GetDescription()}
			}
			if f.GetDefaultJson() == "" {
				continue
			}
			if err := json.Unmarshal([]byte(f.GetDefaultJson()), &v); err != nil {
				return nil, &ConfigError{Key: f.GetName(), Problem: "plugin declares a bad default: " + err.Error()}
			}
		}
		cv, err := coerce(f, v)
		if err != nil {
			return nil, err
		}
		out[f.GetName()] = cv
	}
	return out, nil
}

func coerce(f *commonv1.ConfigField, v any) (any, error) {
	d := Loose{Fix: f.GetDescription(), ListSep: ","}
	key := f.GetName()
	switch f.GetType() {
	case commonv1.FieldType_FIELD_TYPE_STRING:
		s, err := d.String(key, v)
		if err != nil {
			return nil, err
		}
		return s, allowed(f, s)
	case commonv1.FieldType_FIELD_TYPE_BOOL:
		return d.Bool(key, v)
	case commonv1.FieldType_FIELD_TYPE_INT, commonv1.FieldType_FIELD_TYPE_FLOAT:
		var n float64
		var err error
		if f.GetType() == commonv1.FieldType_FIELD_TYPE_INT {
			var i int64
			i, err = d.Int(key, v)
			n = float64(i)
		} else {
			n, err = d.Float(key, v)
		}
		if err != nil {
			return nil, err
		}
		if f.GetHasBounds() && !(n >= f.GetMin() && n <= f.GetMax()) { // also refuses NaN
			return nil, &ConfigError{Key: key, Problem: "is " + DescribeValue(v) + ", out of range", Fix: fmt.Sprintf("use a value from %s to %s",
				strconv.FormatFloat(f.GetMin(), 'f', -1, 64), strconv.FormatFloat(f.GetMax(), 'f', -1, 64))}
		}
		if f.GetType() == commonv1.FieldType_FIELD_TYPE_INT {
			return int64(n), nil
		}
		return n, nil
	case commonv1.FieldType_FIELD_TYPE_DURATION:
		if _, err := d.Duration(key, v); err != nil {
			return nil, err
		}
		return strings.TrimSpace(v.(string)), nil
	case commonv1.FieldType_FIELD_TYPE_STRING_LIST:
		l, err := d.StringList(key, v)
		if err != nil {
			return nil, sectionKey(key, err)
		}
		for _, s := range l {
			if err := allowed(f, s); err != nil {
				return nil, err
			}
		}
		return l, nil
	}
	return nil, &ConfigError{Key: key, Problem: "plugin declares an unknown field type " + f.GetType().String()}
}

// allowed checks s against f's allowed values.
func allowed(f *commonv1.ConfigField, s string) error {
	if len(f.GetAllowed()) == 0 || slices.Contains(f.GetAllowed(), s) {
		return nil
	}
	fix := "use one of: " + strings.Join(f.GetAllowed(), ", ")
	if sug := SuggestKey(s, f.GetAllowed()); strings.HasPrefix(sug, "did you mean") {
		fix = sug + " (" + fix + ")"
	}
	return &ConfigError{Key: f.GetName(), Problem: "is " + strconv.Quote(s) + ", not an allowed value", Fix: fix}
}

// EditDistance is the Levenshtein distance of a and b: what config readers
// use to suggest the key a misspelt one was meant to be.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// knownKeys refuses the first key of section, in sorted order, that is not
// among names, suggesting the nearest one.
func knownKeys(section map[string]any, names []string) error {
	keys := make([]string, 0, len(section))
	for k := range section {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(names, k) {
			return &ConfigError{Key: k, Problem: "unknown key", Fix: SuggestKey(k, names)}
		}
	}
	return nil
}
