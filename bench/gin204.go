//go:build ignore

// gin204 is a bare Gin server, gin.New() in release mode with one route
// answering 204 and no middleware: the HTTP floor of this box, to compare
// the API's figures with, measured with the same tools in the same session.
//
//	go build -o /tmp/gin204 bench/gin204.go
//	/tmp/gin204 -addr 127.0.0.1:18099 &
//	wrk -t2 -c64 -d20s --latency -s bench/report.lua http://127.0.0.1:18099/
//	/tmp/voteload -mode get -url http://127.0.0.1:18099 -path / -c 64 -d 20s
//
// Any path answers 204 (NoRoute).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18099", "listen address")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.GET("/", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	e.NoRoute(func(c *gin.Context) { c.Status(http.StatusNoContent) })
	if err := http.ListenAndServe(*addr, e); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
