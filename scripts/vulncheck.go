//go:build ignore

// vulncheck reads govulncheck's JSON (-format json) on stdin and fails when
// our code reaches a vulnerability in a module we can upgrade. Reachable
// ones in the standard library are listed too, but only fail the run when
// the machine's toolchain is at or past the version that fixes them: the
// toolchain is the machine's, not ours to choose (README, "Tests").
//
//	go run golang.org/x/vuln/cmd/govulncheck@VERSION -db file://DB -format json ./... | go run scripts/vulncheck.go
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
			Receiver string `json:"receiver"`
		} `json:"trace"`
	} `json:"finding"`
}

func main() {
	dec := json.NewDecoder(os.Stdin)
	summaries := map[string]string{}
	type hit struct{ id, module, version, fixed, via string }
	// By vulnerability and module: one id can name both the standard
	// library and a module (HTTP/2 lives in both net/http and x/net).
	hits := map[string]hit{}
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "vulncheck: reading govulncheck's output:", err)
			os.Exit(2)
		}
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		if f := m.Finding; f != nil && len(f.Trace) > 0 && f.Trace[0].Function != "" {
			// A trace that names a function: our code calls it.
			// Findings of one vulnerability come one per call path, not all
			// naming the fixed version: keep the one that does.
			last := f.Trace[len(f.Trace)-1]
			h := hit{f.OSV, f.Trace[0].Module, f.Trace[0].Version, f.FixedVersion, last.Package + "." + last.Function}
			key := f.OSV + " " + h.module
			if prev, ok := hits[key]; ok && h.fixed == "" {
				h.fixed = prev.fixed
			}
			hits[key] = h
		}
	}
	ids := make([]string, 0, len(hits))
	for id := range hits {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	toolchain := strings.TrimPrefix(runtime.Version(), "go")
	failed := 0
	for _, id := range ids {
		h := hits[id]
		verdict := "FAIL"
		if h.module == "stdlib" && h.fixed != "" && older(toolchain, strings.TrimPrefix(h.fixed, "v")) {
			verdict = "toolchain" // fixed only by a newer Go than the machine's
		} else {
			failed++
		}
		fmt.Printf("vulncheck: %-9s %s %s@%s (fixed in %s), reached from %s: %s\n", verdict, h.id, h.module, h.version, h.fixed, h.via, summaries[h.id])
	}
	fmt.Printf("vulncheck: %d reachable vulnerabilities, %d in modules we can upgrade or in a standard library the toolchain (%s) already fixes\n",
		len(ids), failed, runtime.Version())
	if failed > 0 {
		os.Exit(1)
	}
}

// older reports whether Go version a (1.26.8) comes before b (1.26.9).
func older(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.TrimLeft(pa[i], "v"))
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(strings.TrimLeft(pb[i], "v"))
		}
		if x != y {
			return x < y
		}
	}
	return false
}
