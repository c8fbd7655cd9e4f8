// Command launcher-fixture stands in for the action's sources in the launcher
// tests: built from source by dist/launcher.js, it says how it was built and
// where it runs from. Its dependency makes go.sum matter.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/sync/errgroup"
)

func main() {
	var g errgroup.Group
	exe, _ := os.Executable()
	var settings []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if strings.HasPrefix(s.Key, "GO") || strings.HasPrefix(s.Key, "CGO_") {
				settings = append(settings, s.Key+"="+s.Value)
			}
		}
	}
	fmt.Printf("fixture ran: %s/%s %s exe=%s args=%v settings=%v\n", runtime.GOOS, runtime.GOARCH, runtime.Version(), exe, os.Args[1:], settings)
	if err := g.Wait(); err != nil {
		os.Exit(1)
	}
}
