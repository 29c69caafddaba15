// A Go program with a known number of defers, for `frugal trace --go` (crates/cli/tests/trace.rs).
//
// Each round calls loopDefers(10): ten defers in a loop, each a heap record made by
// runtime.deferproc; openCoded(): one open-coded defer, which calls no runtime function; and
// panicky(): one open-coded defer that recovers a panic (runtime.gopanic runs it).
//
// Usage: godefers ROUNDS [WAIT_MS]
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

var sink int

//go:noinline
func loopDefers(n int) {
	for i := 0; i < n; i++ {
		defer func(i int) { sink += i }(i)
	}
}

//go:noinline
func openCoded() {
	defer func() { sink++ }()
	sink--
}

//go:noinline
func panicky() {
	defer func() {
		if recover() != nil {
			sink++
		}
	}()
	panic("demo")
}

func main() {
	rounds, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage: godefers ROUNDS [WAIT_MS]")
		os.Exit(2)
	}
	if len(os.Args) > 2 {
		ms, _ := strconv.Atoi(os.Args[2])
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	for r := 0; r < rounds; r++ {
		loopDefers(10)
		openCoded()
		panicky()
	}
	fmt.Println(sink)
}
