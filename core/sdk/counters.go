package sdk

import (
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"unsafe"
)

// DroppedPrefix starts the name of every counter of things a layer
// dropped, and only of those: "dropped_" + why ("dropped_oversize",
// "dropped_unknown_peer"). The host sums them per layer, and a test that a
// run lost nothing checks them all; a counter of drops under another name
// would hide from both.
const DroppedPrefix = "dropped_"

// Counter is one of a layer's Health counters: a monotonic count (Add) or
// a level (Store). It is safe for concurrent use and needs no lock, so
// Health never waits for a batch in progress.
type Counter struct{ atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Drop is a Counter of things dropped for one reason. Its Health name is
// DroppedPrefix + the reason its tag gives, so the naming rule holds by
// construction.
type Drop struct{ Counter }

// Counters is a layer's set of Health counters, exported one way: Snapshot
// fills HealthResponse.counters, which the host exports to Prometheus.
//
// A layer declares its counters as one struct of Counter and Drop fields:
//
//	type counters struct {
//		Sent     sdk.Counter `counter:"frames_sent"`
//		Oversize sdk.Drop    `drop:"oversize"` // Health name dropped_oversize
//	}
//
// and builds the set once with NewCounters(&c); the fields may be
// unexported. Drops of an open-ended set
// of reasons (an enum, the sentinel errors of a decoder) are added with
// Counters.Drop; levels computed when asked (peers connected) with Level.
type Counters struct {
	entries []counterEntry
}

// counterEntry is one counter: a value, or a level read when asked.
type counterEntry struct {
	name  string
	value *atomic.Uint64
	read  func() uint64
}

// NewCounters builds the set from the tagged Counter and Drop fields of
// the struct set points to. Fields without a counter or drop tag are left
// out. It panics on a bad or repeated name: that is a bug in the layer,
// found by its first test.
func NewCounters(set any) *Counters {
	c := &Counters{}
	if set == nil {
		return c
	}
	rv := reflect.ValueOf(set)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("sdk: NewCounters wants a pointer to a struct, not %T", set))
	}
	rv = rv.Elem()
	counterT, dropT := reflect.TypeFor[Counter](), reflect.TypeFor[Drop]()
	for i := range rv.NumField() {
		sf := rv.Type().Field(i)
		name, isCounter := sf.Tag.Lookup("counter")
		reason, isDrop := sf.Tag.Lookup("drop")
		switch {
		case !isCounter && !isDrop:
			continue
		case isCounter && isDrop:
			panic(fmt.Sprintf("sdk: counter field %s has both a counter and a drop tag", sf.Name))
		case isCounter && sf.Type != counterT:
			panic(fmt.Sprintf("sdk: field %s has a counter tag but is a %v, not an sdk.Counter", sf.Name, sf.Type))
		case isDrop && sf.Type != dropT:
			panic(fmt.Sprintf("sdk: field %s has a drop tag but is a %v, not an sdk.Drop", sf.Name, sf.Type))
		case isCounter:
			c.add(name, &fieldAddr[Counter](rv.Field(i)).Uint64)
		default:
			c.Drop(reason, &fieldAddr[Drop](rv.Field(i)).Counter)
		}
	}
	return c
}

// fieldAddr is the address of a field of type T, exported or not (a
// layer's counters are usually unexported fields).
func fieldAddr[T any](f reflect.Value) *T {
	return (*T)(unsafe.Pointer(f.UnsafeAddr()))
}

// Counter adds a counter named name (not starting with DroppedPrefix) and
// returns it; into, when not nil, is the Counter to use.
func (c *Counters) Counter(name string, into *Counter) *Counter {
	if into == nil {
		into = new(Counter)
	}
	c.add(name, &into.Uint64)
	return into
}

// Drop adds a counter of things dropped for reason, named DroppedPrefix +
// reason, and returns it; into, when not nil, is the Counter to use.
func (c *Counters) Drop(reason string, into *Counter) *Counter {
	if strings.HasPrefix(reason, DroppedPrefix) {
		panic(fmt.Sprintf("sdk: drop reason %q: give the reason alone; the name gets %q itself", reason, DroppedPrefix))
	}
	if into == nil {
		into = new(Counter)
	}
	c.register(counterEntry{name: DroppedPrefix + reason, value: &into.Uint64})
	return into
}

// Level adds a counter whose value read returns when Health asks (the
// number of peers connected, sessions open).
func (c *Counters) Level(name string, read func() uint64) {
	checkNotDrop(name)
	c.register(counterEntry{name: name, read: read})
}

func (c *Counters) add(name string, v *atomic.Uint64) {
	checkNotDrop(name)
	c.register(counterEntry{name: name, value: v})
}

func checkNotDrop(name string) {
	if strings.HasPrefix(name, DroppedPrefix) {
		panic(fmt.Sprintf("sdk: counter %q is named as a drop; make it an sdk.Drop with the reason %q", name, strings.TrimPrefix(name, DroppedPrefix)))
	}
}

// register checks e's name and adds it.
func (c *Counters) register(e counterEntry) {
	if err := CheckCounterName(e.name); err != nil {
		panic(err.Error())
	}
	for _, o := range c.entries {
		if o.name == e.name {
			panic(fmt.Sprintf("sdk: counter %q is declared twice", e.name))
		}
	}
	c.entries = append(c.entries, e)
}

// CheckCounterName reports whether name is a valid counter name: lower
// snake case ([a-z][a-z0-9_]*, no trailing underscore), as Prometheus
// label values and Health keys are written.
func CheckCounterName(name string) error {
	if name == "" {
		return fmt.Errorf("sdk: a counter has no name")
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || i > 0 && (r >= '0' && r <= '9' || r == '_')
		if !ok {
			return fmt.Errorf("sdk: counter name %q: use lower snake case (a-z, 0-9, _), starting with a letter", name)
		}
	}
	if strings.HasSuffix(name, "_") || name == strings.TrimSuffix(DroppedPrefix, "_") {
		return fmt.Errorf("sdk: counter name %q is incomplete", name)
	}
	return nil
}

// Snapshot returns every counter by its Health name, for
// HealthResponse.counters.
func (c *Counters) Snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(c.entries))
	for _, e := range c.entries {
		if e.read != nil {
			m[e.name] = e.read()
		} else {
			m[e.name] = e.value.Load()
		}
	}
	return m
}

// Names returns the counters' Health names in the order they were added.
func (c *Counters) Names() []string {
	out := make([]string, len(c.entries))
	for i, e := range c.entries {
		out[i] = e.name
	}
	return out
}
