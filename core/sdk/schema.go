package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// A plugin's config section is one Go struct; its tags are the schema.
//
//	type Config struct {
//		Listen   string        `json:"listen" default:"127.0.0.1:0" desc:"TCP address to listen on"`
//		MaxPeers int           `json:"max_peers" default:"25" min:"1" max:"100000" desc:"most peers at once"`
//		Mode     string        `json:"mode" default:"batch" enum:"batch,interactive" desc:"how messages go out"`
//		Epoch    time.Duration `json:"epoch" default:"300ms" min:"1ms" max:"1m" desc:"length of one epoch"`
//		Static   []string      `json:"static" desc:"peers kept connected"`
//		Target   *float64      `json:"target" desc:"absent: the same as min_pow"`
//	}
//
// ConfigFields derives PluginInfo.config from it and LoadConfig decodes a
// section into it. The tags:
//
//   - json: the key (lower snake case); "-" or no tag leaves the field out.
//   - default: the value of an absent key, written as in an environment
//     variable ("30s", "true", "a,b" for a list). No default: the zero
//     value (a pointer field stays nil, so "absent" can be told apart).
//   - desc: one sentence for humans; shown by `strata plugins list` and in
//     errors.
//   - min, max: inclusive bounds of a number or a duration ("1ms").
//   - enum: the values a string, or each entry of a list, may take ("a,b").
//   - required:"true": the key must be set; it then has no default.
//
// Field types: string, bool, the integer and float types, time.Duration
// (written as a Go duration string), []string, and a pointer to a scalar
// among these. A config type may have a Validate() error method for the
// checks that tags cannot say (two keys that must agree, an address that
// must parse); LoadConfig calls it last. Its *ConfigError keys are the
// section's keys.

// ConfigFields derives the ConfigField list of PluginInfo.config from the
// tags of T, a struct. It panics on a malformed tag: that is a bug in the
// plugin, found by its first test (CheckConfig finds it without a panic).
func ConfigFields[T any]() []*commonv1.ConfigField {
	specs, err := configSpecs(reflect.TypeFor[T]())
	if err != nil {
		panic(err)
	}
	out := make([]*commonv1.ConfigField, len(specs))
	for i, s := range specs {
		out[i] = s.field
	}
	return out
}

// CheckConfig reports a malformed tag of T, naming the field.
func CheckConfig[T any]() error {
	_, err := configSpecs(reflect.TypeFor[T]())
	return err
}

// ConfigDefaults returns T with every key at its default.
func ConfigDefaults[T any]() (T, error) {
	return LoadConfig[T]("")
}

// LoadConfig decodes a config section (ConfigureRequest.config_json) into
// a T strictly: absent or null keys take their defaults; an unknown key, a
// missing required key, a value of the wrong type, out of bounds or not
// among the allowed values is a *ConfigError naming the key, with "did you
// mean" for a misspelt key. Values are read as a strict Loose reads them:
// the host's ApplySchema has already turned the strings of environment
// variables and flags into numbers, bools and lists, so a string where a
// number belongs is a mistake here, as it is in JSON. Last, T's Validate
// method runs, if it has one.
func LoadConfig[T any](configJSON string) (T, error) {
	var cfg T
	rt := reflect.TypeFor[T]()
	specs, err := configSpecs(rt)
	if err != nil {
		return cfg, err
	}
	section, err := parseSection(configJSON)
	if err != nil {
		return cfg, err
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	if err := knownKeys(section, names); err != nil {
		return cfg, err
	}
	rv := reflect.ValueOf(&cfg).Elem()
	for _, s := range specs {
		v, present := section[s.name]
		if !present || v == nil {
			if s.field.GetRequired() {
				return cfg, &ConfigError{Key: s.name, Problem: "is required", Fix: "set it: " + s.field.GetDescription()}
			}
			if s.def != nil {
				rv.FieldByIndex(s.index).Set(*s.def)
			}
			continue
		}
		x, err := s.decode(v, Loose{Strict: true, Fix: s.field.GetDescription()})
		if err != nil {
			return cfg, err
		}
		rv.FieldByIndex(s.index).Set(x)
	}
	if err := validate(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// validate runs the Validate method of *cfg or cfg, if there is one.
func validate(cfg any) error {
	if v, ok := cfg.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	if v, ok := reflect.ValueOf(cfg).Elem().Interface().(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// parseSection decodes a JSON object, keeping numbers exact.
func parseSection(configJSON string) (map[string]any, error) {
	if strings.TrimSpace(configJSON) == "" {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(strings.NewReader(configJSON))
	dec.UseNumber()
	var section map[string]any
	if err := dec.Decode(&section); err != nil {
		return nil, &ConfigError{Problem: "does not decode as a section: " + err.Error(), Fix: "write the plugin's keys as a map"}
	}
	if section == nil {
		section = map[string]any{}
	}
	return section, nil
}

// SuggestKey is the Fix for an unknown key: "did you mean <the known key
// closest to it>?" when one is close, or else the list of known keys.
func SuggestKey(key string, known []string) string {
	best, bestD := "", math.MaxInt
	for _, k := range known {
		if d := EditDistance(key, k); 3*d <= len(k) && d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	if len(known) == 0 {
		return "this section takes no keys; remove it"
	}
	return "remove it or check its spelling; the keys are: " + strings.Join(known, ", ")
}

// fieldSpec is one key of a config struct.
type fieldSpec struct {
	name  string
	index []int
	typ   reflect.Type // the field's type
	elem  reflect.Type // typ, or what it points to
	field *commonv1.ConfigField
	// def is the default, nil when the key has none.
	def *reflect.Value
	// lo, hi bound numbers (as float64) and durations (as nanoseconds).
	bounded bool
	lo, hi  float64
}

var durationType = reflect.TypeFor[time.Duration]()

// configSpecs reads the tags of a config struct type.
func configSpecs(t reflect.Type) ([]*fieldSpec, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("sdk: config type %v is not a struct", t)
	}
	var out []*fieldSpec
	seen := map[string]bool{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if tag == "" || tag == "-" || !sf.IsExported() {
			continue
		}
		if seen[tag] {
			return nil, fmt.Errorf("sdk: config %v: key %q is declared twice", t, tag)
		}
		seen[tag] = true
		s, err := newFieldSpec(sf, tag)
		if err != nil {
			return nil, fmt.Errorf("sdk: config %v, field %s: %w", t, sf.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func newFieldSpec(sf reflect.StructField, name string) (*fieldSpec, error) {
	s := &fieldSpec{name: name, index: sf.Index, typ: sf.Type, elem: sf.Type}
	if s.elem.Kind() == reflect.Pointer {
		s.elem = s.elem.Elem()
	}
	f := &commonv1.ConfigField{Name: name, Description: sf.Tag.Get("desc")}
	s.field = f
	switch k := s.elem.Kind(); {
	case s.elem == durationType:
		f.Type = commonv1.FieldType_FIELD_TYPE_DURATION
	case k == reflect.String:
		f.Type = commonv1.FieldType_FIELD_TYPE_STRING
	case k == reflect.Bool:
		f.Type = commonv1.FieldType_FIELD_TYPE_BOOL
	case k >= reflect.Int && k <= reflect.Uint64:
		f.Type = commonv1.FieldType_FIELD_TYPE_INT
	case k == reflect.Float32 || k == reflect.Float64:
		f.Type = commonv1.FieldType_FIELD_TYPE_FLOAT
	case k == reflect.Slice && s.elem.Elem().Kind() == reflect.String && sf.Type.Kind() != reflect.Pointer:
		f.Type = commonv1.FieldType_FIELD_TYPE_STRING_LIST
	default:
		return nil, fmt.Errorf("type %v is not a config type", sf.Type)
	}
	if f.Description == "" {
		return nil, errors.New(`no desc tag: say in one sentence what the key does`)
	}
	if e := sf.Tag.Get("enum"); e != "" {
		if f.Type != commonv1.FieldType_FIELD_TYPE_STRING && f.Type != commonv1.FieldType_FIELD_TYPE_STRING_LIST {
			return nil, errors.New("enum on a key that is not a string or a list of strings")
		}
		f.Allowed = strings.Split(e, ",")
	}
	if err := s.bounds(sf.Tag); err != nil {
		return nil, err
	}
	if r := sf.Tag.Get("required"); r != "" {
		req, err := strconv.ParseBool(r)
		if err != nil {
			return nil, fmt.Errorf("required:%q is not true or false", r)
		}
		f.Required = req
	}
	def, hasDef := sf.Tag.Lookup("default")
	switch {
	case f.Required && hasDef:
		return nil, errors.New("a required key has no default")
	case f.Required:
	case hasDef:
		v, err := s.decode(def, Loose{ListSep: ","})
		if err != nil {
			return nil, fmt.Errorf("default %q: %w", def, err)
		}
		s.def = &v
		f.DefaultJson = defaultJSON(v)
	case sf.Type.Kind() != reflect.Pointer:
		// No default tag: the zero value, which the schema states too.
		v := reflect.Zero(sf.Type)
		if f.Type == commonv1.FieldType_FIELD_TYPE_STRING_LIST {
			v = reflect.ValueOf([]string{})
		}
		if _, err := s.check(v); err != nil {
			return nil, fmt.Errorf("the zero value is not allowed; give a default tag: %w", err)
		}
		s.def = &v
		f.DefaultJson = defaultJSON(v)
	}
	return s, nil
}

// defaultJSON is a default as ConfigField.default_json has it.
func defaultJSON(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	x := v.Interface()
	if d, ok := x.(time.Duration); ok {
		x = d.String()
	}
	b, err := json.Marshal(x)
	if err != nil {
		return ""
	}
	return string(b)
}

// bounds reads the min and max tags.
func (s *fieldSpec) bounds(tag reflect.StructTag) error {
	lo, hasLo := tag.Lookup("min")
	hi, hasHi := tag.Lookup("max")
	if !hasLo && !hasHi {
		if k := s.elem.Kind(); k >= reflect.Uint && k <= reflect.Uint64 {
			s.bounded, s.lo, s.hi = true, 0, float64(maxOfKind(k))
			s.field.HasBounds, s.field.Min, s.field.Max = true, s.lo, s.hi
		}
		return nil
	}
	s.bounded = true
	s.lo, s.hi = math.Inf(-1), math.Inf(1)
	parse := func(text string) (float64, error) {
		if s.elem == durationType {
			d, err := time.ParseDuration(text)
			return float64(d), err
		}
		return strconv.ParseFloat(text, 64)
	}
	var err error
	switch s.field.GetType() {
	case commonv1.FieldType_FIELD_TYPE_INT, commonv1.FieldType_FIELD_TYPE_FLOAT, commonv1.FieldType_FIELD_TYPE_DURATION:
	default:
		return errors.New("min or max on a key that is not a number or a duration")
	}
	if hasLo {
		if s.lo, err = parse(lo); err != nil {
			return fmt.Errorf("min:%q: %w", lo, err)
		}
	} else if k := s.elem.Kind(); k >= reflect.Uint && k <= reflect.Uint64 {
		s.lo = 0
	}
	if hasHi {
		if s.hi, err = parse(hi); err != nil {
			return fmt.Errorf("max:%q: %w", hi, err)
		}
	}
	if s.lo > s.hi {
		return fmt.Errorf("min %s is above max %s", lo, hi)
	}
	if s.field.GetType() != commonv1.FieldType_FIELD_TYPE_DURATION {
		s.field.HasBounds = true
		s.field.Min, s.field.Max = s.lo, s.hi
		if math.IsInf(s.lo, -1) {
			s.field.Min = -math.MaxFloat64
		}
		if math.IsInf(s.hi, 1) {
			s.field.Max = math.MaxFloat64
		}
	}
	return nil
}

func maxOfKind(k reflect.Kind) uint64 {
	switch k {
	case reflect.Uint8:
		return math.MaxUint8
	case reflect.Uint16:
		return math.MaxUint16
	case reflect.Uint32:
		return math.MaxUint32
	}
	return math.MaxInt64 // what an int64 (and the JSON of a config) holds
}

// decode reads v into a value of the field's type and checks it.
func (s *fieldSpec) decode(v any, d Loose) (reflect.Value, error) {
	key := s.name
	x := reflect.New(s.elem).Elem()
	switch s.field.GetType() {
	case commonv1.FieldType_FIELD_TYPE_DURATION:
		t, err := d.Duration(key, v)
		if err != nil {
			return x, err
		}
		x.SetInt(int64(t))
	case commonv1.FieldType_FIELD_TYPE_STRING:
		str, err := d.String(key, v)
		if err != nil {
			return x, err
		}
		x.SetString(str)
	case commonv1.FieldType_FIELD_TYPE_BOOL:
		b, err := d.Bool(key, v)
		if err != nil {
			return x, err
		}
		x.SetBool(b)
	case commonv1.FieldType_FIELD_TYPE_INT:
		n, err := d.Int(key, v)
		if err != nil {
			return x, err
		}
		if s.elem.Kind() >= reflect.Uint {
			if n < 0 {
				return x, s.outOfRange(v)
			}
			if x.OverflowUint(uint64(n)) {
				return x, s.outOfRange(v)
			}
			x.SetUint(uint64(n))
		} else {
			if x.OverflowInt(n) {
				return x, s.outOfRange(v)
			}
			x.SetInt(n)
		}
	case commonv1.FieldType_FIELD_TYPE_FLOAT:
		f, err := d.Float(key, v)
		if err != nil {
			return x, err
		}
		x.SetFloat(f)
	case commonv1.FieldType_FIELD_TYPE_STRING_LIST:
		l, err := d.StringList(key, v)
		if err != nil {
			return x, sectionKey(key, err)
		}
		x.Set(reflect.ValueOf(slices.Clone(l)))
	}
	if s.typ.Kind() == reflect.Pointer {
		p := reflect.New(s.elem)
		p.Elem().Set(x)
		x = p
	}
	return s.check(x)
}

// check applies the bounds and the allowed values to a decoded value.
func (s *fieldSpec) check(x reflect.Value) (reflect.Value, error) {
	v := x
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if s.bounded {
		var n float64
		switch k := v.Kind(); {
		case k >= reflect.Int && k <= reflect.Int64:
			n = float64(v.Int())
		case k >= reflect.Uint && k <= reflect.Uint64:
			n = float64(v.Uint())
		default:
			n = v.Float()
		}
		if !(n >= s.lo && n <= s.hi) {
			return x, s.outOfRange(v.Interface())
		}
	}
	if allowed := s.field.GetAllowed(); len(allowed) > 0 {
		vals := []string{}
		if v.Kind() == reflect.String {
			vals = append(vals, v.String())
		} else {
			vals = append(vals, v.Interface().([]string)...)
		}
		for _, str := range vals {
			if !slices.Contains(allowed, str) {
				fix := "use one of: " + strings.Join(allowed, ", ")
				if sug := SuggestKey(str, allowed); strings.HasPrefix(sug, "did you mean") {
					fix = sug + " (" + fix + ")"
				}
				return x, &ConfigError{Key: s.name, Problem: "is " + strconv.Quote(str) + ", not an allowed value", Fix: fix}
			}
		}
	}
	return x, nil
}

func (s *fieldSpec) outOfRange(v any) error {
	show := func(f float64) string {
		if s.elem == durationType {
			return time.Duration(f).String()
		}
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	if d, ok := v.(time.Duration); ok {
		v = d.String()
	}
	var fix string
	switch {
	case math.IsInf(s.lo, -1):
		fix = "use at most " + show(s.hi)
	case math.IsInf(s.hi, 1):
		fix = "use at least " + show(s.lo)
	default:
		fix = "use a value from " + show(s.lo) + " to " + show(s.hi)
	}
	return &ConfigError{Key: s.name, Problem: "is " + DescribeValue(v) + ", out of range", Fix: fix}
}

// DecodeConfig decodes a config section (ConfigureRequest.config_json) into
// v strictly, keeping the values v holds for absent keys: an unknown key is
// a ConfigError naming it. It is for config types without tags; a plugin
// whose config struct carries its schema in tags uses LoadConfig.
func DecodeConfig(configJSON string, v any) error {
	if strings.TrimSpace(configJSON) == "" {
		configJSON = "{}"
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(configJSON)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		const unknown = "json: unknown field "
		if msg := err.Error(); strings.HasPrefix(msg, unknown) {
			key := strings.Trim(strings.TrimPrefix(msg, unknown), `"`)
			return &ConfigError{Key: key, Problem: "unknown key", Fix: SuggestKey(key, jsonKeys(v))}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &ConfigError{Key: te.Field, Problem: fmt.Sprintf("has type %s, want %s", te.Value, te.Type), Fix: "correct the value's type"}
		}
		return &ConfigError{Problem: "does not decode: " + err.Error()}
	}
	return nil
}

// jsonKeys lists the JSON keys of the struct v points to.
func jsonKeys(v any) []string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out = append(out, name)
	}
	return out
}
