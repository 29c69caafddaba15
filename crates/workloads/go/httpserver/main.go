// The article's chapter-1 example: an HTTP service built with `go build -o api-server main.go`,
// said to be "only 12 MB". frugal builds this file and measures the binary.
package main

import (
	"fmt"
	"log"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}
