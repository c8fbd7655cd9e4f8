package ghout

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/runnerlog"
)

// hostile are byte streams a RUN step (or a Dockerfile) can put on stdout
// through BuildKit's plain progress, each of which the runner acts on when
// written raw.
var hostile = []struct {
	name   string
	stream string
	raw    string // the command the runner takes from the raw stream
}{
	{"cr then command", "#5 0.123 x\r::warning::injected\n", "warning"},
	{"legacy form mid-line", "#5 0.124 ##[warning]legacy\n", "warning"},
	{"legacy form at line start", "##[error]legacy\n", "error"},
	{"stop-commands", "#5 0.125 y\r::stop-commands::t\n", "stop-commands"},
	{"add-mask", "#5 0.126 z\r::add-mask::x\n", "add-mask"},
	{"set-output of a failed step", "#5 ERROR: \r::set-output name=digest::sha256:evil\n", "set-output"},
	{"crlf then command", "#5 0.127 a\r\n::error::after crlf\n", "error"},
	{"double cr", "#5 0.128 b\r\r::notice::double\n", "notice"},
	{"leading white space", "#5 0.129 c\r \t::group::fake group\n", "group"},
	{"no-break space", "#5 0.130 c\r\u00a0::endgroup::\n", "endgroup"},
	{"cr at the end", "#5 0.131 d\r", ""},
	{"own stop and resume", "::stop-commands::t\n::warning::while stopped\n::t::\n::save-state name=x::y\n", "stop-commands"},
	{"legacy add-mask", "#5 0.132 ##[add-mask]x\n", "add-mask"},
	{"legacy after three hashes", "###[set-env name=A]b\n", "set-env"},
	{"zero-width space before command", "\u200b::warning::zwsp\n", ""},
	{"nul before command", "\x00::warning::nul\n", ""},
	{"bare command", "::debug::x\n", "debug"},
}

func TestHostileStreamsAreCommandsWhenRaw(t *testing.T) {
	t.Parallel()
	for _, tc := range hostile {
		if tc.raw == "" {
			continue // only the runner's culture-sensitive comparison could match these
		}
		got := runnerlog.Replay(tc.stream).Commands
		if len(got) == 0 || got[0].Name != tc.raw {
			t.Errorf("%s: raw %q: runner commands %+v, want %s first (the test replay is wrong)", tc.name, tc.stream, got, tc.raw)
		}
	}
}

// write feeds the chunks to a fresh Writer (between Begin and End if stopped)
// and returns what reached the runner.
func write(t *testing.T, stopped bool, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out)
	if stopped {
		if err := w.Begin(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range chunks {
		if n, err := w.Write([]byte(c)); err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// onlyStopResume checks that the runner saw nothing but the Writer's own stop
// and resume, once each and with the same token (or nothing, if not stopped).
func onlyStopResume(t *testing.T, name string, log runnerlog.Log, stopped bool) {
	t.Helper()
	want := 0
	if stopped {
		want = 2
	}
	cmds := log.Commands
	if len(cmds) != want || log.Stopped ||
		(stopped && (cmds[0].Name != "stop-commands" || cmds[1].Name != "resume" || cmds[1].Data != cmds[0].Data)) {
		t.Errorf("%s: runner commands %+v (stopped at end: %v), want only the writer's own stop and resume", name, cmds, log.Stopped)
	}
}

func TestWriterHostileStreamsAtEveryByteBoundary(t *testing.T) {
	t.Parallel()
	for _, tc := range hostile {
		for _, stopped := range []bool{false, true} {
			name := fmt.Sprintf("%s (stopped %v)", tc.name, stopped)
			whole := write(t, stopped, tc.stream)
			onlyStopResume(t, name, runnerlog.Replay(whole), stopped)
			if stopped {
				continue // tokens differ per Writer; the unstopped outputs are compared below
			}
			for i := 1; i < len(tc.stream); i++ {
				if got := write(t, false, tc.stream[:i], tc.stream[i:]); got != whole {
					t.Errorf("%s: split at %d: got %q, want %q", name, i, got, whole)
				}
			}
			var bytewise []string
			for i := range len(tc.stream) {
				bytewise = append(bytewise, tc.stream[i:i+1])
			}
			if got := write(t, false, bytewise...); got != whole {
				t.Errorf("%s: a byte per Write: got %q, want %q", name, got, whole)
			}
		}
	}
}

func TestWriterVisibleForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"#5 0.1 plain output\n", "#5 0.1 plain output\n"},
		{"#5 0.1 x\r::warning::y\n", "#5 0.1 x␍::warning::y\n"},
		{"::warning::y\n", "\\::warning::y\n"},
		{"  \t::warning::y\n", "  \t\\::warning::y\n"},
		{"\r::warning::y\n", "␍\\::warning::y\n"},
		{"\u200b::warning::y\n", "\u200b\\::warning::y\n"},
		{"\x00::warning::y\n", "\x00\\::warning::y\n"},
		{"#5 0.1 ##[group]g\n", "#5 0.1 ##[\\group]g\n"},
		{"###[x]##[y]\n", "###[\\x]##[\\y]\n"},
		{"a\r\nb\n", "a\nb\n"},
		{"progress 10%\rprogress 20%\r", "progress 10%␍progress 20%␍\n"},
		{"no newline at the end", "no newline at the end\n"},
		{": not a command\n", ": not a command\n"},
		{"#5 0.1 ok::: fine\n", "#5 0.1 ok::: fine\n"},
	} {
		if got := write(t, false, tc.in); got != tc.want {
			t.Errorf("Write(%q) then End: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriterLongLineWithoutNewline(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out)
	// "é" is two bytes: the cut must fall between runes.
	long := "#5 0.1 " + strings.Repeat("é", maxLine) + "::warning::tail"
	if _, err := w.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	if out.Len() == 0 {
		t.Fatal("a line longer than the cap was held back entirely")
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	lines := runnerlog.ReadLines(out.String())
	if len(lines) != 3 || strings.Join(lines, "") != long {
		t.Errorf("long line came out changed, in %d lines", len(lines))
	}
	for i, l := range lines {
		if len(l) > maxLine+1 || !utf8Valid(l) {
			t.Errorf("line %d: %d bytes, valid UTF-8 %v", i, len(l), utf8Valid(l))
		}
	}
	onlyStopResume(t, "long line", runnerlog.Replay(out.String()), false)
}

func TestWriterLongLineSameHoweverWritten(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxLine+10) + "\n"
	whole := write(t, false, long)
	if got := write(t, false, long[:maxLine], long[maxLine:maxLine+1], long[maxLine+1:]); got != whole {
		t.Errorf("a line over the cap comes out differently in pieces: %d lines, whole: %d lines", len(runnerlog.ReadLines(got)), len(runnerlog.ReadLines(whole)))
	}
	if lines := runnerlog.ReadLines(whole); len(lines) != 2 || len(lines[0]) != maxLine {
		t.Errorf("a line over the cap: %d lines, first %d bytes; want it cut at %d", len(lines), len(lines[0]), maxLine)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\ufffd") == s }

func TestWriterAddMaskMidStream(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Begin())
	_, err := w.Write([]byte("#5 0.1 abc"))
	must(err)
	must(w.AddMask("s3cr3t"))
	_, err = w.Write([]byte("def\n#5 0.2 x\r::add-mask::evil\n"))
	must(err)
	must(w.AddMask("line1\n\n  \r\nline2 50%0A\r\n"))
	must(w.AddMask(" \n"))
	_, err = w.Write([]byte("#5 0.3 done\n"))
	must(err)
	must(w.End())

	log := runnerlog.Replay(out.String())
	names := log.Names()
	var masks, tokens []string
	for _, c := range log.Commands {
		switch c.Name {
		case "add-mask":
			masks = append(masks, c.Data)
		case "stop-commands":
			tokens = append(tokens, c.Data)
		}
	}
	wantNames := []string{"stop-commands", "resume", "add-mask", "stop-commands", "resume", "add-mask", "add-mask", "stop-commands", "resume"}
	if !slices.Equal(names, wantNames) || log.Stopped {
		t.Fatalf("runner commands %v (stopped at end: %v), want %v\n%s", names, log.Stopped, wantNames, out.String())
	}
	if want := []string{"s3cr3t", "line1", "line2 50%0A"}; !slices.Equal(masks, want) {
		t.Errorf("masks %q, want %q", masks, want)
	}
	if len(tokens) != 3 || tokens[0] == tokens[1] || tokens[1] == tokens[2] || tokens[0] == tokens[2] {
		t.Errorf("stop tokens %q: want three different ones", tokens)
	}
	if !slices.Contains(log.Lines, "#5 0.1 abcdef") {
		t.Errorf("the build line held across AddMask was broken:\n%s", out.String())
	}
}

func TestAddMaskWithoutBegin(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out)
	if err := w.AddMask("pw"); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "::add-mask::pw\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBeginTwice(t *testing.T) {
	t.Parallel()
	w := NewWriter(&bytes.Buffer{})
	if err := w.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := w.Begin(); err == nil {
		t.Error("a second Begin without End succeeded")
	}
}

func TestCommandsWriterForTheAction(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out)
	a := githubactions.New(githubactions.WithWriter(w.Commands()), githubactions.WithGetenv(func(string) string { return "" }))
	a.Warningf("before the build")
	if err := w.Begin(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("#5 0.1 partial")); err != nil {
		t.Fatal(err)
	}
	a.Warningf("during the build: %s", "x\r::error::y") // go-githubactions escapes the message
	a.Infof("ref %s", "main\n::warning::evil\r##[error]evil")
	a.Infof("ref %s", Line("::warning::evil"))
	if _, err := w.Write([]byte(" line\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}

	log := runnerlog.Replay(out.String())
	var got []string
	for _, c := range log.Commands {
		if c.Name == "warning" || c.Name == "error" {
			got = append(got, c.Name+": "+c.Data)
		}
	}
	want := []string{"warning: before the build", "warning: during the build: x\r::error::y"}
	if !slices.Equal(got, want) || log.Stopped {
		t.Errorf("runner annotations %q (stopped at end: %v), want %q\n%s", got, log.Stopped, want, out.String())
	}
	if !slices.Contains(log.Lines, "#5 0.1 partial line") {
		t.Errorf("the build line held across the action's messages was broken:\n%s", out.String())
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"refs/heads/main", "refs/heads/main"},
		{"a\nb\r\nc\rd", "a␊b␍␊c␍d"},
		{"::warning::x", `\::warning::x`},
		{" ::warning::x", ` \::warning::x`},
		{"\n::warning::x", `␊\::warning::x`},
		{"feat/##[warning]x", `feat/##[\warning]x`},
		{"a::b", "a::b"},
	} {
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if log := runnerlog.Replay(Line(tc.in) + "\n"); len(log.Commands) != 0 {
			t.Errorf("Line(%q) printed alone: runner commands %+v", tc.in, log.Commands)
		}
	}
}

// TestPlainProgressOfAHostileBuild runs BuildKit's real plain progress printer
// on the status of a RUN step that prints the hostile streams, in chunks cut
// mid-line, with the ECR token refresh masking a value from another goroutine.
func TestPlainProgressOfAHostileBuild(t *testing.T) {
	t.Parallel()
	var logs []string
	for _, tc := range hostile {
		logs = append(logs, tc.stream)
	}
	all := strings.Join(logs, "")
	var chunks []string
	for len(all) > 0 {
		n := min(len(all), 7)
		chunks = append(chunks, all[:n])
		all = all[n:]
	}
	name := "[2/2] RUN printf 'x\r::error::from the name'"

	var rawOut bytes.Buffer
	plainProgress(t, &rawOut, name, chunks, nil)
	raw := runnerlog.Replay(rawOut.String())
	if len(raw.Commands) == 0 {
		t.Fatal("BuildKit's printer passed no command through raw: the hostile build is not hostile")
	}

	var out bytes.Buffer
	w := NewWriter(&out)
	if err := w.Begin(); err != nil {
		t.Fatal(err)
	}
	plainProgress(t, w, name, chunks, func() {
		if err := w.AddMask("ecr-token-2"); err != nil {
			t.Error(err)
		}
	})
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	log := runnerlog.Replay(out.String())
	names := log.Names()
	for _, c := range log.Commands {
		if c.Name == "add-mask" && c.Data != "ecr-token-2" {
			t.Errorf("runner registered mask %q", c.Data)
		}
	}
	want := []string{"stop-commands", "resume", "add-mask", "stop-commands", "resume"}
	if !slices.Equal(names, want) || log.Stopped {
		t.Errorf("runner commands %v (stopped at end: %v), want %v\n%s", names, log.Stopped, want, out.String())
	}
	if !strings.Contains(out.String(), "#1 0.") || !strings.Contains(out.String(), `legacy`) {
		t.Errorf("the build's output is missing:\n%s", out.String())
	}
}

// plainProgress prints one RUN vertex with the given log chunks through
// progressui's plain mode into out, calling during (if set) from another
// goroutine while the logs stream.
func plainProgress(t *testing.T, out io.Writer, name string, chunks []string, during func()) {
	t.Helper()
	d, err := progressui.NewDisplay(out, progressui.PlainMode)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *client.SolveStatus)
	done := make(chan error, 1)
	go func() {
		_, err := d.UpdateFrom(context.Background(), ch)
		done <- err
	}()
	dg := digest.FromString(name)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ch <- &client.SolveStatus{Vertexes: []*client.Vertex{{Digest: dg, Name: name, Started: &start}}}
	var wg sync.WaitGroup
	for i, c := range chunks {
		if i == len(chunks)/2 && during != nil {
			wg.Go(during)
		}
		ch <- &client.SolveStatus{Logs: []*client.VertexLog{{Vertex: dg, Data: []byte(c), Timestamp: start.Add(time.Duration(i) * time.Millisecond)}}}
	}
	wg.Wait()
	end := start.Add(time.Second)
	ch <- &client.SolveStatus{Vertexes: []*client.Vertex{{Digest: dg, Name: name, Started: &start, Completed: &end}}}
	close(ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWriterConcurrent has BuildKit-like producers writing lines in pieces on
// their own streams while the action masks values and issues commands from
// other goroutines; run with -race.
func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	const producers, lines, masks = 3, 200, 20
	var out bytes.Buffer
	w := NewWriter(&out)
	if err := w.Begin(); err != nil {
		t.Fatal(err)
	}
	a := githubactions.New(githubactions.WithWriter(w.Commands()), githubactions.WithGetenv(func(string) string { return "" }))
	var wg sync.WaitGroup
	for p := range producers {
		var s io.Writer = w
		if p > 0 {
			s = w.Stream()
		}
		wg.Go(func() {
			for i := range lines {
				for _, piece := range []string{fmt.Sprintf("#%d ", p), "0.1 ", fmt.Sprintf("line %d ", i), "x\r::warning::evil", "\n"} {
					if _, err := s.Write([]byte(piece)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := range masks {
			if err := w.AddMask(fmt.Sprintf("token-%d", i)); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for i := range masks {
			a.Noticef("notice %d", i)
		}
	})
	wg.Wait()
	if err := w.End(); err != nil {
		t.Fatal(err)
	}

	log := runnerlog.Replay(out.String())
	count := map[string]int{}
	for _, c := range log.Commands {
		count[c.Name]++
	}
	if count["add-mask"] != masks || count["notice"] != masks || count["warning"] != 0 ||
		count["stop-commands"] != count["resume"] || log.Stopped {
		t.Errorf("runner commands %v (stopped at end: %v), want %d masks, %d notices, no warning, every stop resumed", count, log.Stopped, masks, masks)
	}
	next := make([]int, producers)
	for _, l := range log.Lines {
		var p, i int
		if _, err := fmt.Sscanf(l, "#%d 0.1 line %d ", &p, &i); err != nil {
			continue
		}
		if want := fmt.Sprintf("#%d 0.1 line %d x␍::warning::evil", p, i); l != want || i != next[p] {
			t.Fatalf("line %q, want %q (line %d of producer %d)", l, want, next[p], p)
		}
		next[p]++
	}
	for p, n := range next {
		if n != lines {
			t.Errorf("producer %d: %d whole lines reached the runner, want %d", p, n, lines)
		}
	}
}

// A secret registered through a.AddMask or Writer.AddMask is masked in every
// form this package prints it: a build's output line (a lone "\r" becomes "␍",
// "##[" becomes "##[\"), a message of the action's own, an error annotation and
// the job summary's cells and code spans, which the runner masks line by line.
func TestMasksCoverEveryFormThePackagePrints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		secret func(a, b string) string
	}{
		{"legacy command marker", func(a, b string) string { return a + "##[" + b }},
		{"carriage return", func(a, b string) string { return a + "\r" + b }},
		{"command marker", func(a, b string) string { return "::" + a + "::" + b }},
		{"trailing newline", func(a, b string) string { return a + "-" + b + "\n" }},
		{"markup", func(a, b string) string { return a + "|&<`*" + b }},
		{"all of them", func(a, b string) string { return "::" + a + "##[|\r::&" + b + "\r\n" }},
	} {
		for _, via := range []string{"a.AddMask", "Writer.AddMask"} {
			t.Run(tc.name+" via "+via, func(t *testing.T) {
				t.Parallel()
				parts := []string{"tokA" + rand.Text()[:12], "tokB" + rand.Text()[:12]}
				secret := tc.secret(parts[0], parts[1])
				var out bytes.Buffer
				w := NewWriter(&out)
				a := githubactions.New(githubactions.WithWriter(w.Commands()), githubactions.WithGetenv(func(string) string { return "" }))
				if err := w.Begin(); err != nil {
					t.Fatal(err)
				}
				if via == "a.AddMask" {
					a.AddMask(secret)
				} else if err := w.AddMask(secret); err != nil {
					t.Fatal(err)
				}
				for _, s := range []string{"#7 0.25 " + secret + "\n", secret + "\n", "x" + secret + secret + "\r\n"} {
					if _, err := w.Write([]byte(s)); err != nil {
						t.Fatal(err)
					}
				}
				a.Infof("value: %s", Line(secret))
				a.Errorf("failed with %s", secret)
				if err := w.End(); err != nil {
					t.Fatal(err)
				}
				summary := "| Step | " + Code(secret) + " |\n| Reason | " + Cell(secret) + " |\n"

				log := runnerlog.Replay(out.String())
				shown := append(slices.Clone(log.Shown), runnerlog.MaskLines(summary, log.Masks)...)
				printed := strings.Join(shown, "\n")
				for _, part := range parts {
					if strings.Contains(printed, part) {
						t.Errorf("secret %q: %s shows in the masked log:\n%s\nraw:\n%s\nsummary:\n%s", secret, part, printed, out.String(), summary)
					}
				}
				if strings.Count(printed, "***") < 6 {
					t.Errorf("secret %q: the masked log shows fewer than 6 masks, so the secret was not printed everywhere:\n%s", secret, printed)
				}
			})
		}
	}
}
