package p2pkit_test

import (
	"testing"
	"time"

	"github.com/strata-msg/strata/core/sdk/p2pkit"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	b := p2pkit.NewBucket(1000, 500, t0) // 1000 B/s, 500 B at once

	if d := b.Take(t0, 500); d != 0 {
		t.Fatalf("the burst waits %v", d)
	}
	if d := b.Take(t0, 100); d != 100*time.Millisecond {
		t.Fatalf("100 B into debt: wait %v, want 100ms", d)
	}
	// 100 ms later the debt is repaid and nothing is held.
	if d := b.Take(at(100), 0); d != 0 {
		t.Fatalf("after the debt: wait %v", d)
	}
	if b.TryTake(at(100), 1) {
		t.Fatal("TryTake took from an empty bucket")
	}
	if !b.TryTake(at(300), 200) || b.TryTake(at(300), 1) {
		t.Fatal("TryTake: 200 B after 200 ms, then none")
	}
	if b.Full(at(700)) || !b.Full(at(800)) {
		t.Fatal("the bucket is full again 500 ms after it emptied, not before")
	}
	// A frame larger than the burst passes a full bucket, into debt.
	if d := b.Take(at(800), 1500); d != time.Second {
		t.Fatalf("1500 B from a full 500 B bucket: wait %v, want 1s", d)
	}
	big := p2pkit.NewBucket(1000, 500, t0)
	if !big.TryTake(t0, 1500) || big.TryTake(at(999), 1500) || !big.TryTake(at(1500), 1500) {
		t.Fatal("TryTake of more than the burst: from a full bucket only")
	}
	// A clock that goes back adds nothing.
	c := p2pkit.NewBucket(1000, 500, t0)
	c.Take(t0, 500)
	if c.TryTake(at(-1000), 1) {
		t.Fatal("a clock going back filled the bucket")
	}

	free := p2pkit.NewBucket(0, 1, t0)
	if free.Take(t0, 1<<30) != 0 || !free.TryTake(t0, 1<<30) || !free.Full(t0) {
		t.Fatal("rate 0 limits")
	}
}

func TestBudget(t *testing.T) {
	b := p2pkit.NewBudget(100)
	if ok, _ := b.TryTake(60); !ok {
		t.Fatal("60 of 100 refused")
	}
	ok, room := b.TryTake(60)
	if ok || room == nil {
		t.Fatal("120 of 100 taken")
	}
	select {
	case <-room:
		t.Fatal("room before a release")
	default:
	}
	b.Release(60)
	select {
	case <-room:
	default:
		t.Fatal("no room after a release")
	}
	if ok, _ := b.TryTake(100); !ok || b.Used() != 100 {
		t.Fatalf("the whole budget: used %d", b.Used())
	}
	b.Release(100)
	// A frame larger than the budget fits an empty budget, alone.
	if ok, _ := b.TryTake(250); !ok {
		t.Fatal("a frame larger than the budget never fits")
	}
	if ok, _ := b.TryTake(1); ok {
		t.Fatal("a byte beside an oversize frame")
	}
	b.Release(250)
	if b.Used() != 0 {
		t.Fatalf("used %d after releasing all", b.Used())
	}
}
