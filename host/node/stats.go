package node

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-msg/strata/host/faults"
)

// DropReason says why the host dropped a frame at a boundary.
type DropReason int

// Reasons the host drops a frame.
const (
	// DropLayerDown: the receiving layer is not running (crashed, restarting).
	DropLayerDown DropReason = iota
	// DropBackpressure: the receiving layer did not take the frame in time.
	DropBackpressure
	// DropUnknownContact: no privacy address is known for the identity.
	DropUnknownContact
	// DropInvalid: a frame with no direction, or one that left the stack's
	// ends the wrong way (a DOWN frame from the p2p layer).
	DropInvalid
	// DropStoreError: a message for the application could not be written
	// to the history, so it was not delivered (nor acknowledged to the sync
	// layer, which delivers it again after its next start).
	DropStoreError
	numDropReasons
)

var dropNames = [numDropReasons]string{"layer_down", "backpressure", "unknown_contact", "invalid", "store_error"}

// String returns the reason's metric label.
func (r DropReason) String() string { return dropNames[r] }

// Direction indexes per-direction counters.
const (
	down = 0
	up   = 1
)

// boundary counts what crosses between two adjacent layers (or the top
// layer and the application).
type boundary struct {
	name    string
	frames  [2]atomic.Uint64
	bytes   [2]atomic.Uint64
	dropped [numDropReasons]atomic.Uint64
	// unknownSender counts UP frames whose privacy address matched no contact.
	unknownSender atomic.Uint64
	// faults are the boundary's fault injectors by direction; nil for none.
	faults [2]*faults.Injector
}

// BoundaryStats is a snapshot of one boundary's counters.
type BoundaryStats struct {
	// Name is "<lower>|<upper>", e.g. "p2p|privacy" or "privacy|app".
	Name                 string
	FramesDown, FramesUp uint64
	BytesDown, BytesUp   uint64
	Dropped              map[string]uint64
	UnknownSender        uint64
	// Faults is what the boundary's fault injectors did (both directions):
	// dropped, duplicated, delayed, reordered. Nil without injectors.
	Faults map[string]uint64
}

func (b *boundary) snapshot() BoundaryStats {
	s := BoundaryStats{
		Name:          b.name,
		FramesDown:    b.frames[down].Load(),
		FramesUp:      b.frames[up].Load(),
		BytesDown:     b.bytes[down].Load(),
		BytesUp:       b.bytes[up].Load(),
		Dropped:       map[string]uint64{},
		UnknownSender: b.unknownSender.Load(),
	}
	for r := DropReason(0); r < numDropReasons; r++ {
		if n := b.dropped[r].Load(); n > 0 {
			s.Dropped[r.String()] = n
		}
	}
	if b.faults[down] != nil || b.faults[up] != nil {
		s.Faults = b.faultStats()
	}
	return s
}

// collector exports a node's counters to Prometheus at scrape time, so the
// hot path only touches atomics.
type collector struct {
	n *Node

	frames, bytes, dropped, unknown, restarts, up, layer, faults *prometheus.Desc
}

func newCollector(n *Node) *collector {
	labels := prometheus.Labels{"node": n.cfg.Node.Name}
	return &collector{
		n:        n,
		frames:   prometheus.NewDesc("strata_boundary_frames_total", "Frames that crossed a layer boundary.", []string{"boundary", "direction"}, labels),
		bytes:    prometheus.NewDesc("strata_boundary_bytes_total", "Payload bytes that crossed a layer boundary.", []string{"boundary", "direction"}, labels),
		dropped:  prometheus.NewDesc("strata_boundary_dropped_total", "Frames the host dropped at a boundary.", []string{"boundary", "reason"}, labels),
		unknown:  prometheus.NewDesc("strata_boundary_unknown_sender_total", "UP frames whose privacy address matched no single contact.", []string{"boundary"}, labels),
		restarts: prometheus.NewDesc("strata_plugin_restarts_total", "Times a crashed plugin was restarted.", []string{"layer", "plugin"}, labels),
		up:       prometheus.NewDesc("strata_plugin_up", "Whether the layer's plugin is running (1) or not (0).", []string{"layer", "plugin"}, labels),
		layer:    prometheus.NewDesc("strata_layer_counter", "A counter reported by the layer's plugin in its health report.", []string{"layer", "plugin", "name"}, labels),
		faults:   prometheus.NewDesc("strata_boundary_faults_total", "What the host's fault injector did to frames at a boundary (config faults).", []string{"boundary", "kind"}, labels),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.frames, c.bytes, c.dropped, c.unknown, c.restarts, c.up, c.layer, c.faults} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.n.bounds {
		for dir, label := range []string{"down", "up"} {
			ch <- prometheus.MustNewConstMetric(c.frames, prometheus.CounterValue, float64(b.frames[dir].Load()), b.name, label)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(b.bytes[dir].Load()), b.name, label)
		}
		ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.CounterValue, float64(b.unknownSender.Load()), b.name)
		for r := DropReason(0); r < numDropReasons; r++ {
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(b.dropped[r].Load()), b.name, r.String())
		}
		if b.faults[down] != nil || b.faults[up] != nil {
			for kind, v := range b.faultStats() {
				ch <- prometheus.MustNewConstMetric(c.faults, prometheus.CounterValue, float64(v), b.name, kind)
			}
		}
	}
	for _, s := range c.n.slots {
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.restarts.Load()), s.key, s.layer.Plugin)
		upv := 0.0
		if s.running() {
			upv = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, upv, s.key, s.layer.Plugin)
		for name, v := range s.counters() {
			ch <- prometheus.MustNewConstMetric(c.layer, prometheus.GaugeValue, float64(v), s.key, s.layer.Plugin, name)
		}
	}
}
