// The article's chapter-1 example: an HTTP service built with `go build -o api-server main.go`,
// said to be "only 12 MB". frugal builds this file, measures the binary, and runs it under load
// with GODEBUG=gctrace=1 to read the garbage collector's stop-the-world pauses.
//
// Usage: api-server [ADDR]   (default 127.0.0.1:0; prints "listening on http://HOST:PORT")
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

// sink keeps each request's buffer reachable until the next request replaces it, so the
// handler's working memory is heap garbage, as a real handler's would be.
var sink []byte

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		buf[0] = 'o'
		buf[1] = 'k'
		sink = buf
		w.Write(buf[:2])
	})
	log.Fatal(http.Serve(ln, nil))
}
