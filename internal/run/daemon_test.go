package run_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// buildkitd-config-inline and buildkitd-flags configure the container the
// action starts (its steps: a recording docker CLI in buildkitconn; the
// container on a real engine: daemon_real_test.go). Here a real buildkitd gets
// the same config file and arguments, and the action builds on it: a registry
// mirror and an allowed entitlement take effect.
func TestBuildkitdConfigAndFlagsReachTheDaemon(t *testing.T) {
	s := teststack.Get(t)
	const mirrored = "mirror.ebc.invalid" // resolves nowhere: only the mirror serves it
	d, err := buildkitconn.ParseDaemon("",
		fmt.Sprintf("[registry.%q]\n  mirrors = [%q]\n", mirrored, s.Registry)+s.RegistryConfig(),
		"--allow-insecure-entitlement security.insecure")
	if err != nil {
		t.Fatal(err)
	}
	addr := s.StartBuildkitd(t, d.Config, d.Args)

	base := "BASE=" + mirrored + "/base:busybox"
	mustRun(t, pushRun(t, s, "daemon-mirror", "main", map[string]string{"buildkit-host": addr, "build-args": base}))
	if got := imageFile(t, s.Registry+"/daemon-mirror:latest", "/app/app.txt"); got != appTxt(t) {
		t.Errorf("FROM through the mirror: app/app.txt %q", got)
	}
	// The stack's own daemon has no such mirror.
	failRun(t, pushRun(t, s, "daemon-mirror", "main", map[string]string{"build-args": base}))

	// allow grants what the daemon's flags allow.
	mustRun(t, optsRun(t, s, "daemon-insecure", "insecure", map[string]string{"buildkit-host": addr, "allow": "security.insecure"}))
	// CAP_SYS_ADMIN (bit 21) is outside a RUN step's default capabilities.
	got := strings.TrimSpace(strings.TrimPrefix(imageFile(t, s.Registry+"/daemon-insecure:latest", "/caps"), "CapEff:"))
	if caps, err := strconv.ParseUint(got, 16, 64); err != nil || caps&(1<<21) == 0 {
		t.Errorf("RUN --security=insecure with allow: CapEff %q (%v), want CAP_SYS_ADMIN", got, err)
	}
	// Not asked for, BuildKit refuses it.
	r := optsRun(t, s, "daemon-insecure", "insecure", map[string]string{"buildkit-host": addr})
	if err := failRun(t, r); !strings.Contains(err.Error(), "security.insecure is not allowed") {
		t.Errorf("RUN --security=insecure without allow: %v", err)
	}
	// Asked of a daemon that does not allow it: BuildKit's own refusal.
	r = optsRun(t, s, "daemon-insecure", "insecure", map[string]string{"allow": "security.insecure"})
	if err := failRun(t, r); !strings.Contains(err.Error(), "granting entitlement security.insecure is not allowed by build daemon configuration") {
		t.Errorf("allow on a daemon that does not allow it: %v", err)
	}
}
