// Package faults is the fault injector the Strata host applies to frames
// crossing a layer boundary: seeded, reproducible loss, duplication,
// reordering, delay and jitter, for tests and A/B comparisons.
//
// # Model
//
// A boundary is named by its lower layer: "p2p" is the boundary between the
// p2p layer and the layer above it, "privacy", "secure" and "sync" likewise
// (the top layer's boundary is the one with the application). Each boundary
// has one [Spec], read from the node config's faults section by [Parse].
// Frames cross a boundary in two directions, and an [Injector] handles one
// direction of one boundary: the host builds an injector for each direction
// the Spec applies to ([Spec.Applies]) and passes the frames crossing that
// way through [Injector.Apply].
//
// Inside an injector a frame goes through four stages, in this order:
//
//  1. drop: with probability Drop the frame is discarded;
//  2. duplicate: with probability Duplicate a kept frame is followed by a
//     copy of itself (a proto.Clone, so the two do not share memory);
//  3. reorder: frames are collected into groups of up to Reorder frames,
//     and each group is released in a random order, when it is full or
//     [FlushInterval] after its first frame arrived, whichever is first;
//  4. delay: each frame released by the reorder stage (or straight from the
//     duplicate stage when there is no reordering) is delivered Delay ±
//     Jitter later, never earlier than that moment itself.
//
// # Determinism
//
// Every injector has its own PRNG (math/rand/v2's PCG), seeded from the
// configured seed and the injector's name, so two boundaries or directions
// with one seed draw independent streams. The injector draws a fixed number
// of values per frame, in input order, whatever the timing: one for the drop
// decision (when Drop > 0), one for the duplicate decision (when Duplicate >
// 0 and the frame was kept), and for each frame leaving the duplicate stage
// one for its jitter (when Jitter > 0) and one for its place in its reorder
// group (when Reorder > 1). So for a given seed, name and sequence of input
// frames, which frames are dropped, which are duplicated, each frame's delay
// and its place within its reorder group are the same on every run, however
// the frames are split into Apply calls.
//
// Not deterministic: anything that depends on the clock. A reorder group
// that is cut short by FlushInterval ends at a point that depends on when
// the frames arrived, which changes the grouping (not the draws) of the
// frames after it; and when delivered frames are actually handed over, and
// how they are split into deliver calls, depends on scheduling. Frames fed
// to one injector from several goroutines at once have no defined input
// order, so their decisions are not reproducible either.
//
// # Ordering
//
// Let S be the frames leaving the duplicate stage, in order (each duplicate
// right after its original). With Jitter = 0 an injector delivers S cut
// into consecutive groups of at most Reorder frames, each group permuted:
// no frame is delivered more than Reorder-1 places away from its place in
// S, and with Reorder <= 1 the order of S is kept exactly (also with a
// Delay). With Jitter > 0 frames are delivered in the order of their due
// times, ties in S order, and no bound on the displacement holds.
//
// # Delivery and cost
//
// An injector whose Spec neither reorders nor delays (Reorder <= 1, Delay =
// 0, Jitter = 0) has no goroutine: Apply decides under the injector's
// mutex and delivers what passes synchronously, in one deliver call, before
// it returns. Without any fault set it hands the caller's slice on
// unchanged and does not allocate.
//
// An injector that reorders or delays has one goroutine that keeps the
// delayed frames in a min-heap of due times (ties in arrival order) and
// sleeps on a single timer until the earliest due time or the end of the
// current reorder group's flush interval; that stays cheap at 100k frames/s
// (one heap entry per delayed frame, no timer per frame). For such an
// injector deliver calls never overlap, and frames are delivered in the
// order they became ready. Frames that are ready when Apply returns (not
// delayed, not held, or a group the call completed) are delivered by Apply
// itself, synchronously, together with any delayed frames that came due in
// the meantime, unless another delivery of the same injector is in progress
// at that moment: then they are queued behind it and the goroutine delivers
// them, so that order is kept and Apply never waits for a deliver call it
// did not make.
//
// deliver is never called while the injector's mutex is held.
package faults
