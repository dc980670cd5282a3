package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-msg/strata/core/pipeline"
)

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

func snapshot(b *pipeline.Boundary) BoundaryStats {
	s := BoundaryStats{
		Name:          b.Name,
		FramesDown:    b.Frames(pipeline.Down),
		FramesUp:      b.Frames(pipeline.Up),
		BytesDown:     b.Bytes(pipeline.Down),
		BytesUp:       b.Bytes(pipeline.Up),
		Dropped:       map[string]uint64{},
		UnknownSender: b.UnknownSenders(),
		Faults:        b.Extra("faults"),
	}
	for _, r := range pipeline.DropReasons() {
		if n := b.Dropped(r); n > 0 {
			s.Dropped[r.String()] = n
		}
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
	for _, b := range c.n.router.Boundaries() {
		for _, dir := range []pipeline.Dir{pipeline.Down, pipeline.Up} {
			ch <- prometheus.MustNewConstMetric(c.frames, prometheus.CounterValue, float64(b.Frames(dir)), b.Name, dir.String())
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(b.Bytes(dir)), b.Name, dir.String())
		}
		ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.CounterValue, float64(b.UnknownSenders()), b.Name)
		for _, r := range pipeline.DropReasons() {
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(b.Dropped(r)), b.Name, r.String())
		}
		for kind, v := range b.Extra("faults") {
			ch <- prometheus.MustNewConstMetric(c.faults, prometheus.CounterValue, float64(v), b.Name, kind)
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
