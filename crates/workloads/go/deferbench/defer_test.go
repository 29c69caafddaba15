// Package deferbench is the Go side of `frugal bench defer`: the same scenarios as the Rust
// engine (crates/workloads/src/defer_bench), written three ways:
//
//   - Manual: the cleanup is called by hand at the end of the function.
//   - Defer: the `defer` statement. With at most 8 defers outside loops the compiler open-codes
//     them (Go 1.14+: no record, a bitmask byte and the calls emitted at each exit); inside a
//     loop every defer gets a runtime record from the per-P pool.
//   - DeferNoCapture: `defer` in a loop of a call without arguments, so that only the runtime's
//     records can allocate (not the closure that captures a deferred call's arguments).
//   - FuncSlice: a []func() appended to and run in reverse, the naive closure list.
//   - BatchDefer: the article's batchDefer (section 4.1) exactly as written — a new sync.Pool per
//     call, the cleanups appended to a pooled slice, run by one deferred closure. As written it
//     runs the cleanups when batchDefer itself returns (so it is deferred once by the caller here,
//     `defer batchDefer(...)`), in registration order (FIFO, unlike defer's LIFO), and the pool
//     is new on every call, so nothing is ever reused.
//
// Run with `go test -bench . -benchmem`; frugal parses the standard output lines.
package deferbench

import (
	"sync"
	"testing"
)

// env mirrors the Rust engine's state: a count of held resources, a checksum of the
// released ones, and an 8 MiB buffer that the "touch" scenario writes to.
type env struct {
	open uint64
	sum  uint64
	buf  []uint64
}

const touchWords = 1 << 20 // 8 MiB of uint64
const touchDefers = 16
const panicDefers = 4

var e = &env{buf: make([]uint64, touchWords)}

// loopN is read at run time so the compiler cannot turn the loops into straight-line code.
var loopN8, loopN64 = 8, 64

//go:noinline
func acquire(ev *env, i uint64) uint64 {
	ev.open++
	return i
}

//go:noinline
func release(ev *env, id uint64) {
	ev.open--
	ev.sum += id
}

//go:noinline
func releaseTouch(ev *env, id uint64) {
	ev.open--
	ev.sum += id
	// The same multiplicative hash as the Rust side: a pseudo-random cache line per release.
	idx := (id * 0x9E3779B97F4A7C15 >> 20) & (touchWords - 1)
	ev.buf[idx]++
}

// ---- one defer per call ----

//go:noinline
func oneManual(ev *env, seed uint64) {
	id := acquire(ev, seed)
	release(ev, id)
}

//go:noinline
func oneDefer(ev *env, seed uint64) {
	id := acquire(ev, seed)
	defer release(ev, id)
}

//go:noinline
func oneFuncSlice(ev *env, seed uint64) {
	var fs []func()
	id := acquire(ev, seed)
	fs = append(fs, func() { release(ev, id) })
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// ---- 8 straight-line defers ----

//go:noinline
func straight8Manual(ev *env, s uint64) {
	a := acquire(ev, s)
	b := acquire(ev, s+1)
	c := acquire(ev, s+2)
	d := acquire(ev, s+3)
	f := acquire(ev, s+4)
	g := acquire(ev, s+5)
	h := acquire(ev, s+6)
	k := acquire(ev, s+7)
	release(ev, k)
	release(ev, h)
	release(ev, g)
	release(ev, f)
	release(ev, d)
	release(ev, c)
	release(ev, b)
	release(ev, a)
}

//go:noinline
func straight8Defer(ev *env, s uint64) {
	a := acquire(ev, s)
	defer release(ev, a)
	b := acquire(ev, s+1)
	defer release(ev, b)
	c := acquire(ev, s+2)
	defer release(ev, c)
	d := acquire(ev, s+3)
	defer release(ev, d)
	f := acquire(ev, s+4)
	defer release(ev, f)
	g := acquire(ev, s+5)
	defer release(ev, g)
	h := acquire(ev, s+6)
	defer release(ev, h)
	k := acquire(ev, s+7)
	defer release(ev, k)
}

//go:noinline
func straight8FuncSlice(ev *env, s uint64) {
	var fs []func()
	for j := uint64(0); j < 8; j++ {
		id := acquire(ev, s+j)
		fs = append(fs, func() { release(ev, id) })
	}
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// ---- N defers registered in a loop ----

//go:noinline
func loopManual(ev *env, s uint64, n int) {
	var ids [64]uint64
	for i := 0; i < n; i++ {
		ids[i] = acquire(ev, s+uint64(i))
	}
	for i := n - 1; i >= 0; i-- {
		release(ev, ids[i])
	}
}

//go:noinline
func loopDefer(ev *env, s uint64, n int) {
	for i := 0; i < n; i++ {
		id := acquire(ev, s+uint64(i))
		defer release(ev, id)
	}
}

//go:noinline
func loopFuncSlice(ev *env, s uint64, n int) {
	var fs []func()
	for i := 0; i < n; i++ {
		id := acquire(ev, s+uint64(i))
		fs = append(fs, func() { release(ev, id) })
	}
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// releaseGlobal is a deferred call without arguments: no closure has to capture anything, so
// what a loop of such defers allocates is the runtime's records alone.
//
//go:noinline
func releaseGlobal() {
	e.open--
	e.sum++
}

//go:noinline
func loopDeferNoCapture(ev *env, s uint64, n int) {
	for i := 0; i < n; i++ {
		acquire(ev, s+uint64(i))
		defer releaseGlobal()
	}
}

// ---- deferred calls that touch memory ----

//go:noinline
func touchManual(ev *env, s uint64) {
	var ids [touchDefers]uint64
	for i := 0; i < touchDefers; i++ {
		ids[i] = acquire(ev, s*touchDefers+uint64(i))
	}
	for i := touchDefers - 1; i >= 0; i-- {
		releaseTouch(ev, ids[i])
	}
}

//go:noinline
func touchDefer(ev *env, s uint64) {
	for i := 0; i < touchDefers; i++ {
		id := acquire(ev, s*touchDefers+uint64(i))
		defer releaseTouch(ev, id)
	}
}

//go:noinline
func touchFuncSlice(ev *env, s uint64) {
	var fs []func()
	for i := 0; i < touchDefers; i++ {
		id := acquire(ev, s*touchDefers+uint64(i))
		fs = append(fs, func() { releaseTouch(ev, id) })
	}
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// ---- the panic path: 4 cleanups, then a panic that the caller recovers ----

type marker struct{}

var boom interface{} = marker{}

//go:noinline
func panicManual(ev *env, s uint64) {
	var ids [panicDefers]uint64
	n := 0
	// Manual cleanup on a panic path still needs one recover-and-repanic wrapper.
	defer func() {
		if r := recover(); r != nil {
			for i := n - 1; i >= 0; i-- {
				release(ev, ids[i])
			}
			panic(r)
		}
	}()
	for i := 0; i < panicDefers; i++ {
		ids[i] = acquire(ev, s+uint64(i))
		n++
	}
	panic(boom)
}

//go:noinline
func panicDefer(ev *env, s uint64) {
	a := acquire(ev, s)
	defer release(ev, a)
	b := acquire(ev, s+1)
	defer release(ev, b)
	c := acquire(ev, s+2)
	defer release(ev, c)
	d := acquire(ev, s+3)
	defer release(ev, d)
	panic(boom)
}

//go:noinline
func panicFuncSlice(ev *env, s uint64) {
	var fs []func()
	defer func() {
		for i := len(fs) - 1; i >= 0; i-- {
			fs[i]()
		}
	}()
	for i := 0; i < panicDefers; i++ {
		id := acquire(ev, s+uint64(i))
		fs = append(fs, func() { release(ev, id) })
	}
	panic(boom)
}

//go:noinline
func catch(f func(*env, uint64), ev *env, s uint64) {
	defer func() { _ = recover() }()
	f(ev, s)
}

// ---- the article's batchDefer (4.1), as written ----

func batchDefer(fns ...func()) {
	// 使用 sync.Pool 复用切片,避免 GC 压力 (the article's comment: "reuse slices with sync.Pool")
	pool := sync.Pool{New: func() interface{} { return make([]func(), 0, 16) }}
	fnsPool := pool.Get().([]func())
	fnsPool = append(fnsPool, fns...)
	defer func() {
		for _, fn := range fnsPool {
			fn()
		}
		pool.Put(fnsPool[:0])
	}()
}

//go:noinline
func straight8Batch(ev *env, s uint64) {
	a := acquire(ev, s)
	b := acquire(ev, s+1)
	c := acquire(ev, s+2)
	d := acquire(ev, s+3)
	f := acquire(ev, s+4)
	g := acquire(ev, s+5)
	h := acquire(ev, s+6)
	k := acquire(ev, s+7)
	defer batchDefer(
		func() { release(ev, a) }, func() { release(ev, b) },
		func() { release(ev, c) }, func() { release(ev, d) },
		func() { release(ev, f) }, func() { release(ev, g) },
		func() { release(ev, h) }, func() { release(ev, k) },
	)
}

//go:noinline
func loopBatch(ev *env, s uint64, n int) {
	var fs []func()
	for i := 0; i < n; i++ {
		id := acquire(ev, s+uint64(i))
		fs = append(fs, func() { release(ev, id) })
	}
	defer batchDefer(fs...)
}

// ---- benchmarks: Benchmark<Strategy>/<scenario> ----

func run(b *testing.B, f func(*env, uint64)) {
	for i := 0; i < b.N; i++ {
		f(e, uint64(i))
	}
	if e.open != 0 {
		b.Fatalf("%d resources leaked", e.open)
	}
}

func scenarios(b *testing.B, one, straight8 func(*env, uint64), loop func(*env, uint64, int),
	touch, pan func(*env, uint64)) {
	b.Run("one", func(b *testing.B) { run(b, one) })
	b.Run("straight8", func(b *testing.B) { run(b, straight8) })
	b.Run("loop8", func(b *testing.B) { run(b, func(ev *env, s uint64) { loop(ev, s, loopN8) }) })
	b.Run("loop64", func(b *testing.B) { run(b, func(ev *env, s uint64) { loop(ev, s, loopN64) }) })
	b.Run("touch", func(b *testing.B) { run(b, touch) })
	b.Run("panic", func(b *testing.B) { run(b, func(ev *env, s uint64) { catch(pan, ev, s) }) })
}

func BenchmarkManual(b *testing.B) {
	scenarios(b, oneManual, straight8Manual, loopManual, touchManual, panicManual)
}

func BenchmarkDefer(b *testing.B) {
	scenarios(b, oneDefer, straight8Defer, loopDefer, touchDefer, panicDefer)
}

// BenchmarkDeferNoCapture isolates the runtime's defer records: the deferred call captures
// nothing, so any allocation left is a record (Go 1.17+ wraps a deferred call with arguments in
// a closure, which escapes to the heap inside a loop).
func BenchmarkDeferNoCapture(b *testing.B) {
	b.Run("loop8", func(b *testing.B) { run(b, func(ev *env, s uint64) { loopDeferNoCapture(ev, s, loopN8) }) })
	b.Run("loop64", func(b *testing.B) { run(b, func(ev *env, s uint64) { loopDeferNoCapture(ev, s, loopN64) }) })
}

func BenchmarkFuncSlice(b *testing.B) {
	scenarios(b, oneFuncSlice, straight8FuncSlice, loopFuncSlice, touchFuncSlice, panicFuncSlice)
}

// BenchmarkBatchDefer measures the article's batchDefer where it would be used: many cleanups
// deferred at once.
func BenchmarkBatchDefer(b *testing.B) {
	b.Run("straight8", func(b *testing.B) { run(b, straight8Batch) })
	b.Run("loop8", func(b *testing.B) { run(b, func(ev *env, s uint64) { loopBatch(ev, s, loopN8) }) })
	b.Run("loop64", func(b *testing.B) { run(b, func(ev *env, s uint64) { loopBatch(ev, s, loopN64) }) })
}
