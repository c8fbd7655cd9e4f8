package e2e_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/runnerlog"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// maskedSecret is a secret for the masks test: its text holds what the log
// writer rewrites or the runner splits lines at; parts are random words in it,
// which must never show once the runner has masked the log.
type maskedSecret struct {
	text  string
	parts []string
}

func maskedSecrets() []maskedSecret {
	word := func() string { return "tok" + strings.ToLower(rand.Text()[:12]) }
	var out []maskedSecret
	for _, f := range []func(a, b string) string{
		func(a, b string) string { return a + "##[" + b },            // the writer prints "##[\"
		func(a, b string) string { return a + "\r" + b },             // the writer prints "␍", the runner ends a line there
		func(a, b string) string { return "::" + a + "::" + b },      // a command's marker
		func(a, b string) string { return a + "-" + b + "\n" },       // a trailing newline, as a file's
		func(a, b string) string { return a + "##[\r::" + b + "\n" }, // all of them
	} {
		a, b := word(), word()
		out = append(out, maskedSecret{f(a, b), []string{a, b}})
	}
	return out
}

// The action masks its secrets (here from secret-envs, as a workflow passes
// `${{ secrets.X }}`) before anything prints them, in every form it prints
// them in. The real binary runs a real build that prints them: a RUN step
// cats them, a step's name holds them (a build-arg carrying the same value)
// and so does the job summary's step table, and a COPY of a path made of them
// fails with an error naming it. Its stdout is then read as the runner reads
// it: ::add-mask:: registers masks, lines end at "\r" and "\n", each line is
// masked, annotations too, and the summary line by line. No part of any
// secret may show, nor be in the outputs.
func TestSecretsNeverShowInTheRunnersLog(t *testing.T) {
	s := teststack.Get(t)
	bin := teststack.Binary(t)
	secrets := maskedSecrets()
	var ids, args, mounts, cats, names []string
	env := map[string]string{}
	for i, sec := range secrets {
		n := i + 1
		ids = append(ids, fmt.Sprintf("s%d=SECRET_%d", n, n))
		env[fmt.Sprintf("SECRET_%d", n)] = sec.text
		args = append(args, fmt.Sprintf("%q", fmt.Sprintf("A%d=%s", n, sec.text))) // quoted: the value spans lines
		mounts = append(mounts, fmt.Sprintf("--mount=type=secret,id=s%d", n))
		cats = append(cats, fmt.Sprintf("cat /run/secrets/s%d; echo", n))
		names = append(names, fmt.Sprintf("[$A%d]", n))
	}
	header := fmt.Sprintf("FROM %s\nARG A1\nARG A2\nARG A3\nARG A4\nARG A5\n", s.BaseImage)

	run := func(t *testing.T, repo, dockerfile string) (*teststack.ActionRun, runnerlog.Log, error) {
		t.Helper()
		ctxDir := t.TempDir()
		writeFile(t, filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644)
		r := teststack.NewActionRun(t, map[string]string{
			"registry":      "http://" + s.Registry,
			"repository":    repo,
			"tags":          "latest",
			"context":       ctxDir,
			"secret-envs":   strings.Join(ids, "\n"),
			"build-args":    strings.Join(args, "\n"),
			"buildkit-host": s.BuildkitAddr,
		})
		for k, v := range env {
			r.Env[k] = v
		}
		if err := r.SetPush("main", "main"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		err := r.Exec(ctx, bin)
		return r, runnerlog.Replay(r.Stdout()), err
	}
	// leaks fails t if a part of a secret is in text (what the runner shows);
	// printed fails t unless raw (the unmasked text) holds every part of the
	// secrets, so that the test shows something.
	leaks := func(t *testing.T, where, text string) {
		t.Helper()
		for _, sec := range secrets {
			for _, p := range sec.parts {
				if strings.Contains(text, p) {
					t.Errorf("%s shows %s of secret %q:\n%s", where, p, sec.text, text)
				}
			}
		}
	}
	printed := func(t *testing.T, where, raw string, secrets []maskedSecret) {
		t.Helper()
		for _, sec := range secrets {
			for _, p := range sec.parts {
				if !strings.Contains(raw, p) {
					t.Errorf("%s never printed %s of secret %q, so the test shows nothing there:\n%s", where, p, sec.text, raw)
				}
			}
		}
	}

	t.Run("build output, step names and summary", func(t *testing.T) {
		r, log, err := run(t, "masks-ok", header+
			"RUN "+strings.Join(mounts, " ")+" "+strings.Join(cats, "; ")+"\n"+
			"RUN echo "+strings.Join(names, " ")+" > /args\n")
		if err != nil {
			t.Fatalf("the build failed: %v\n%s", err, r.StdoutTail(4000))
		}
		printed(t, "the build's stdout", r.Stdout(), secrets)
		leaks(t, "the runner's log", strings.Join(log.Shown, "\n"))
		summary := r.Summary(t)
		printed(t, "the job summary", summary, secrets)
		leaks(t, "the job summary", strings.Join(runnerlog.MaskLines(summary, log.Masks), "\n"))
		outputs, err := os.ReadFile(r.OutputFile)
		if err != nil {
			t.Fatal(err)
		}
		leaks(t, "the step outputs", string(outputs))
	})

	t.Run("error", func(t *testing.T) {
		// The first three hold no "\n", which a path cannot take through COPY's word splitting.
		r, log, err := run(t, "masks-error", header+`COPY ["/$A1/$A2/$A3", "/x"]`+"\n")
		if err == nil {
			t.Fatalf("the build of a COPY from a missing path succeeded:\n%s", r.StdoutTail(4000))
		}
		var annotations []string
		for _, c := range log.Commands {
			if c.Name == "error" {
				annotations = append(annotations, c.Data)
			}
		}
		printed(t, "the error annotation", strings.Join(annotations, "\n"), secrets[:3])
		leaks(t, "the runner's log", strings.Join(log.Shown, "\n"))
	})
}
