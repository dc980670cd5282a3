package node

import "github.com/prometheus/client_golang/prometheus"

// messageCollector exports MessageStats to Prometheus at scrape time.
type messageCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func newMessageCollector(n *Node) *messageCollector {
	return &messageCollector{n: n, desc: prometheus.NewDesc("strata_host_messages_total",
		"Messages the host refused (dropped_*: forged author, wrong conversation, not a member, malformed, replayed, public chat backlog or over quota) or removed from public chats' histories (evicted_public, pruned_public).",
		[]string{"counter"}, prometheus.Labels{"node": n.cfg.Node.Name})}
}

// Describe implements prometheus.Collector.
func (c *messageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *messageCollector) Collect(ch chan<- prometheus.Metric) {
	for name, v := range c.n.MessageStats() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), name)
	}
}
