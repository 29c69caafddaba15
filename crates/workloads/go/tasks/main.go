// Command tasks is the goroutine side of `frugal bench tasks`: it starts N goroutines that block
// on a channel and prints one JSON line with /proc readings taken before and after, in the same
// shape as the Rust child (`frugal bench tasks --child ...`).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

type snapshot struct {
	VmSizeKiB      uint64 `json:"vm_size_kib"`
	VmRSSKiB       uint64 `json:"vm_rss_kib"`
	PssKiB         uint64 `json:"pss_kib"`
	KernelStackKiB uint64 `json:"kernel_stack_kib"`
	PageTablesKiB  uint64 `json:"page_tables_kib"`
	Threads        uint64 `json:"threads"`
}

type report struct {
	Kind      string   `json:"kind"`
	Requested uint64   `json:"requested"`
	Started   uint64   `json:"started"`
	StoppedBy *string  `json:"stopped_by"`
	Before    snapshot `json:"before"`
	After     snapshot `json:"after"`
}

func field(path, name string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+":") {
			parts := strings.Fields(line[len(name)+1:])
			if len(parts) > 0 {
				v, _ := strconv.ParseUint(parts[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

func snap() snapshot {
	return snapshot{
		VmSizeKiB:      field("/proc/self/status", "VmSize"),
		VmRSSKiB:       field("/proc/self/status", "VmRSS"),
		PssKiB:         field("/proc/self/smaps_rollup", "Pss"),
		KernelStackKiB: field("/proc/meminfo", "KernelStack"),
		PageTablesKiB:  field("/proc/meminfo", "PageTables"),
		Threads:        field("/proc/self/status", "Threads"),
	}
}

func main() {
	n, err := strconv.ParseUint(os.Args[1], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage: tasks N")
		os.Exit(2)
	}
	runtime.GC()
	before := snap()
	block := make(chan struct{})
	ready := make(chan struct{}, 1024)
	for i := uint64(0); i < n; i++ {
		go func() {
			ready <- struct{}{}
			<-block
		}()
	}
	for i := uint64(0); i < n; i++ {
		<-ready
	}
	runtime.GC()
	after := snap()
	out, _ := json.Marshal(report{Kind: "goroutine", Requested: n, Started: n, Before: before, After: after})
	fmt.Println(string(out))
	close(block)
}
