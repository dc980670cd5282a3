package compare

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/scenario"
	"github.com/strata-msg/strata/host/testnet"
)

// timelineInterval is the width of a Timeline interval.
const timelineInterval = time.Second

// sendRecord is one accepted send and where it must arrive.
type sendRecord struct {
	at       time.Time
	warm     bool
	want     map[int]bool      // receivers: the group's members but the sender
	received map[int]time.Time // first delivery per receiver
}

// delivery is one message a node's API handed out.
type delivery struct {
	node int
	at   time.Time
}

// recorder gathers sends and deliveries as the API reports them, matches
// them by message id, and computes the run's figures. Latency is from the
// sender's API call to the receiver host's taking of the message (its
// history time), both on this machine's clock.
type recorder struct {
	plan *scenario.Plan

	mu         sync.Mutex
	start      time.Time
	sends      map[string]*sendRecord
	early      map[string][]delivery // deliveries of ids Send has not returned yet
	duplicates int
	stray      int       // deliveries of messages no send of this run made
	failed     int       // measured sends that failed
	firstErr   string    // why the first of them failed
	sentN      int       // measured sends accepted
	lastSend   time.Time // the latest measured send accepted was made
	expected   int
	delivered  int
	sendTimes  []time.Duration // measured, from start
	recvTimes  []time.Duration // measured first deliveries, from start
	latencies  []time.Duration
	last       time.Time // latest measured first delivery
}

func newRecorder(plan *scenario.Plan) *recorder {
	return &recorder{plan: plan, sends: map[string]*sendRecord{}, early: map[string][]delivery{}}
}

func (r *recorder) setStart(t time.Time) {
	r.mu.Lock()
	r.start = t
	r.mu.Unlock()
}

// sent records a send the API accepted as message id, made at at.
func (r *recorder) sent(id []byte, at, accepted time.Time, s scenario.Send) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := &sendRecord{at: at, warm: s.Warm, want: map[int]bool{}, received: map[int]time.Time{}}
	for _, m := range r.plan.Groups[s.Group].Members {
		if m != s.Sender {
			rec.want[m] = true
		}
	}
	r.sends[string(id)] = rec
	if !s.Warm {
		r.sentN++
		if accepted.After(r.lastSend) {
			r.lastSend = accepted
		}
		r.expected += len(rec.want)
		r.sendTimes = append(r.sendTimes, at.Sub(r.start))
	}
	for _, d := range r.early[string(id)] {
		r.take(rec, d)
	}
	delete(r.early, string(id))
}

// sendFailed records a planned send that could not be made.
func (r *recorder) sendFailed(s scenario.Send, err error) {
	if s.Warm {
		return
	}
	r.mu.Lock()
	r.failed++
	if r.firstErr == "" && err != nil {
		r.firstErr = err.Error()
	}
	r.mu.Unlock()
}

// deliver records that node's API handed out message id, taken at at.
func (r *recorder) deliver(node int, id []byte, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.sends[string(id)]
	if !ok {
		r.early[string(id)] = append(r.early[string(id)], delivery{node: node, at: at})
		return
	}
	r.take(rec, delivery{node: node, at: at})
}

// take counts one delivery of rec; the caller holds r.mu.
func (r *recorder) take(rec *sendRecord, d delivery) {
	if !rec.want[d.node] {
		r.stray++
		return
	}
	if _, dup := rec.received[d.node]; dup {
		r.duplicates++
		return
	}
	rec.received[d.node] = d.at
	if rec.warm {
		return
	}
	r.delivered++
	r.recvTimes = append(r.recvTimes, d.at.Sub(r.start))
	r.latencies = append(r.latencies, max(d.at.Sub(rec.at), 0))
	if d.at.After(r.last) {
		r.last = d.at
	}
}

// counts returns measured sends, deliveries and expected deliveries.
func (r *recorder) counts() (sent, delivered, expected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sentN, r.delivered, r.expected
}

// complete reports whether every expected delivery happened.
func (r *recorder) complete() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered >= r.expected
}

// result computes the run's delivery and latency figures; sendingEnded
// is when the sending phase ended, from the start.
func (r *recorder) result(sendingEnded time.Duration) RunResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := RunResult{
		Sent:             r.sentN,
		SendErrors:       r.failed,
		FirstSendError:   r.firstErr,
		Expected:         r.expected,
		Delivered:        r.delivered,
		Duplicates:       r.duplicates,
		Latency:          latencyOf(r.latencies),
		TimelineInterval: timelineInterval,
	}
	if r.expected > 0 {
		res.DeliveryRatio = float64(r.delivered) / float64(r.expected)
	}
	res.Converged = r.delivered >= r.expected
	if res.Converged && !r.last.IsZero() {
		res.Convergence = max(r.last.Sub(r.start)-sendingEnded, 0)
	}
	res.Timeline = timeline(r.sendTimes, r.recvTimes, timelineInterval)
	var last time.Duration
	if !r.lastSend.IsZero() {
		last = r.lastSend.Sub(r.start) - r.plan.Warmup
	}
	res.OfferedRate, res.AchievedRate, res.Overloaded = sendRates(r.plan.Measured(), r.sentN, r.plan.Duration-r.plan.Warmup, last)
	return res
}

// latencyOf summarises latencies: percentiles by the nearest-rank method.
func latencyOf(ls []time.Duration) Latency {
	if len(ls) == 0 {
		return Latency{}
	}
	s := append([]time.Duration(nil), ls...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	pct := func(p int) time.Duration {
		if p <= 0 {
			return s[0]
		}
		k := (p*len(s) + 99) / 100 // ceil(p/100 * n), the nearest rank
		return s[min(max(k, 1), len(s))-1]
	}
	l := Latency{P50: pct(50), P95: pct(95), P99: pct(99), Max: s[len(s)-1], CDF: make([]time.Duration, 101)}
	for p := range 101 {
		l.CDF[p] = pct(p)
	}
	return l
}

// timeline counts sends and deliveries per interval.
func timeline(sends, recvs []time.Duration, width time.Duration) []TimelinePoint {
	if len(sends)+len(recvs) == 0 {
		return nil
	}
	end := max(slices.Max(append([]time.Duration{0}, sends...)), slices.Max(append([]time.Duration{0}, recvs...)))
	pts := make([]TimelinePoint, int(end/width)+1)
	for i := range pts {
		pts[i].At = time.Duration(i+1) * width
	}
	for _, t := range sends {
		pts[max(int(t/width), 0)].Sent++
	}
	for _, t := range recvs {
		pts[max(int(t/width), 0)].Delivered++
	}
	return pts
}

// follow streams client i's incoming messages into rec, subscribing again
// from the last cursor whenever the stream ends (the node restarted),
// until ctx ends.
func follow(ctx context.Context, m *testnet.Member, i int, rec *recorder) {
	var cursor uint64
	for ctx.Err() == nil {
		stream, err := m.Client().Subscribe(ctx, &appv1.SubscribeRequest{After: cursor})
		if err == nil {
			for {
				msg, err := stream.Recv()
				if err != nil {
					break
				}
				cursor = msg.GetCursor()
				if msg.GetOutgoing() {
					continue
				}
				rec.deliver(i, msg.GetMessageId(), time.Unix(0, msg.GetTimeUnixNano()))
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sendBatch sends msgs through m's API in one SendBatch and returns their
// ids in order.
func sendBatch(ctx context.Context, m *testnet.Member, msgs []*appv1.SendRequest) ([][]byte, error) {
	resp, err := m.Client().SendBatch(ctx, &appv1.SendBatchRequest{Messages: msgs})
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(msgs) {
		return nil, fmt.Errorf("SendBatch answered %d results for %d messages", len(resp.GetResults()), len(msgs))
	}
	ids := make([][]byte, len(msgs))
	for i, r := range resp.GetResults() {
		ids[i] = r.GetMessageId()
	}
	return ids, nil
}

// setConversation creates conversation id on m with the other members.
func setConversation(ctx context.Context, m *testnet.Member, id []byte, others [][]byte) error {
	_, err := m.Client().SetConversation(ctx, &appv1.SetConversationRequest{Id: id, Members: others})
	return err
}
