package sdk_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/sdk"
)

// kitConfig exercises every kind of key a config struct may have.
type kitConfig struct {
	Listen   string        `json:"listen" default:"127.0.0.1:0" desc:"address to listen on"`
	MaxPeers int           `json:"max_peers" default:"25" min:"1" max:"100" desc:"most peers"`
	Queue    uint32        `json:"queue" default:"8" desc:"queue length"`
	Mode     string        `json:"mode" default:"batch" enum:"batch,interactive" desc:"how to send"`
	Epoch    time.Duration `json:"epoch" default:"300ms" min:"1ms" max:"1m" desc:"one epoch"`
	Ratio    float64       `json:"ratio" default:"0.5" min:"0" max:"1" desc:"a ratio"`
	On       bool          `json:"on" default:"true" desc:"a switch"`
	Static   []string      `json:"static" desc:"peers kept connected"`
	Security []string      `json:"security" default:"noise,tls" enum:"noise,tls" desc:"security protocols"`
	Target   *float64      `json:"target" desc:"absent: the ratio"`
	Secret   string        `json:"-"`
	low      int
}

// Validate checks what the tags cannot.
func (c *kitConfig) Validate() error {
	if c.Target != nil && *c.Target < c.Ratio {
		return &sdk.ConfigError{Key: "target", Problem: "is below ratio", Fix: "raise it"}
	}
	c.low = c.MaxPeers / 2
	return nil
}

func TestConfigFields(t *testing.T) {
	fields := sdk.ConfigFields[kitConfig]()
	byName := map[string]*commonv1.ConfigField{}
	var names []string
	for _, f := range fields {
		byName[f.GetName()] = f
		names = append(names, f.GetName())
	}
	if got := strings.Join(names, ","); got != "listen,max_peers,queue,mode,epoch,ratio,on,static,security,target" {
		t.Fatalf("keys %s", got)
	}
	tests := []struct {
		key, def string
		typ      commonv1.FieldType
		bounds   bool
		lo, hi   float64
		allowed  string
	}{
		{"listen", `"127.0.0.1:0"`, commonv1.FieldType_FIELD_TYPE_STRING, false, 0, 0, ""},
		{"max_peers", `25`, commonv1.FieldType_FIELD_TYPE_INT, true, 1, 100, ""},
		{"queue", `8`, commonv1.FieldType_FIELD_TYPE_INT, true, 0, 1<<32 - 1, ""},
		{"mode", `"batch"`, commonv1.FieldType_FIELD_TYPE_STRING, false, 0, 0, "batch,interactive"},
		{"epoch", `"300ms"`, commonv1.FieldType_FIELD_TYPE_DURATION, false, 0, 0, ""},
		{"ratio", `0.5`, commonv1.FieldType_FIELD_TYPE_FLOAT, true, 0, 1, ""},
		{"on", `true`, commonv1.FieldType_FIELD_TYPE_BOOL, false, 0, 0, ""},
		{"static", `[]`, commonv1.FieldType_FIELD_TYPE_STRING_LIST, false, 0, 0, ""},
		{"security", `["noise","tls"]`, commonv1.FieldType_FIELD_TYPE_STRING_LIST, false, 0, 0, "noise,tls"},
		{"target", ``, commonv1.FieldType_FIELD_TYPE_FLOAT, false, 0, 0, ""},
	}
	for _, tt := range tests {
		f := byName[tt.key]
		if f.GetDefaultJson() != tt.def || f.GetType() != tt.typ || f.GetHasBounds() != tt.bounds ||
			f.GetMin() != tt.lo || f.GetMax() != tt.hi || strings.Join(f.GetAllowed(), ",") != tt.allowed || f.GetDescription() == "" {
			t.Errorf("%s: %v", tt.key, f)
		}
	}
	// What the host does with the schema gives what the plugin reads.
	section, err := sdk.ApplySchema(fields, map[string]any{"max_peers": "30", "static": "a,b"})
	if err != nil {
		t.Fatal(err)
	}
	if section["max_peers"] != int64(30) || section["epoch"] != "300ms" {
		t.Fatalf("ApplySchema: %v", section)
	}
}

func TestLoadConfig(t *testing.T) {
	def, err := sdk.ConfigDefaults[kitConfig]()
	if err != nil {
		t.Fatal(err)
	}
	if def.Listen != "127.0.0.1:0" || def.MaxPeers != 25 || def.Epoch != 300*time.Millisecond || !def.On ||
		def.Static == nil || len(def.Static) != 0 || strings.Join(def.Security, ",") != "noise,tls" || def.Target != nil || def.low != 12 {
		t.Fatalf("defaults %+v", def)
	}
	got, err := sdk.LoadConfig[kitConfig](`{"max_peers": 40, "queue": 9, "epoch": "2s", "on": false, "static": ["x"], "target": 0.75, "mode": null, "security": ["tls"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxPeers != 40 || got.Queue != 9 || got.Epoch != 2*time.Second || got.On || got.Static[0] != "x" ||
		*got.Target != 0.75 || got.Mode != "batch" || strings.Join(got.Security, ",") != "tls" || got.low != 20 {
		t.Fatalf("got %+v", got)
	}
	bad := []struct {
		name, in, key, text string
	}{
		{"unknown key", `{"max_peer": 3}`, "max_peer", "did you mean max_peers?"},
		{"unknown key far", `{"zzz": 3}`, "zzz", "the keys are: listen, max_peers"},
		{"below min", `{"max_peers": 0}`, "max_peers", "use a value from 1 to 100"},
		{"above max", `{"max_peers": 101}`, "max_peers", "out of range"},
		{"fraction", `{"max_peers": 1.5}`, "max_peers", "want a whole number"},
		{"negative unsigned", `{"queue": -1}`, "queue", "out of range"},
		{"unsigned overflow", `{"queue": 4294967296}`, "queue", "out of range"},
		{"not in enum", `{"mode": "interactiv"}`, "mode", "did you mean interactive?"},
		{"list entry not in enum", `{"security": ["noise", "ssl"]}`, "security", "use one of: noise, tls"},
		{"duration bare", `{"epoch": 5}`, "epoch", "bare number"},
		{"duration too long", `{"epoch": "2m"}`, "epoch", "use a value from 1ms to 1m0s"},
		{"bool", `{"on": "maybe"}`, "on", "want true or false"},
		{"bool as a string", `{"on": "yes"}`, "on", "want true or false"},
		{"number as a string", `{"max_peers": "4"}`, "max_peers", "want a whole number"},
		{"list as a string", `{"static": "a"}`, "static", "want a list of strings"},
		{"validate", `{"target": 0.1}`, "target", "is below ratio"},
		{"not a section", `[1]`, "", "does not decode"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sdk.LoadConfig[kitConfig](tt.in)
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(ce.Error(), tt.text) {
				t.Fatalf("got %v; want a ConfigError for %q with %q", err, tt.key, tt.text)
			}
		})
	}
}

func TestConfigTagsChecked(t *testing.T) {
	type noDesc struct {
		A int `json:"a"`
	}
	type badDefault struct {
		A int `json:"a" default:"x" desc:"a"`
	}
	type defaultOutOfRange struct {
		A int `json:"a" default:"5" min:"6" desc:"a"`
	}
	type zeroNotAllowed struct {
		A string `json:"a" enum:"x,y" desc:"a"`
	}
	type badType struct {
		A map[string]int `json:"a" desc:"a"`
	}
	type requiredWithDefault struct {
		A string `json:"a" required:"true" default:"x" desc:"a"`
	}
	for name, err := range map[string]error{
		"no desc":               sdk.CheckConfig[noDesc](),
		"bad default":           sdk.CheckConfig[badDefault](),
		"default out of range":  sdk.CheckConfig[defaultOutOfRange](),
		"zero not allowed":      sdk.CheckConfig[zeroNotAllowed](),
		"bad type":              sdk.CheckConfig[badType](),
		"required with default": sdk.CheckConfig[requiredWithDefault](),
		"not a struct":          sdk.CheckConfig[int](),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	type required struct {
		A string `json:"a" required:"true" desc:"the a"`
	}
	if _, err := sdk.LoadConfig[required](`{}`); err == nil || !strings.Contains(err.Error(), "is required") {
		t.Errorf("missing required key: %v", err)
	}
}
