package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-githubactions"
)

// readWithOutput runs Read with inputs added to a valid environment and returns
// what the action printed, with whatever the test prints afterwards through
// the same action (as later steps of a run would).
func readWithOutput(t *testing.T, inputs map[string]string, after func(*githubactions.Action, *Config, error)) string {
	t.Helper()
	env := validEnv(appDir(t))
	for k, v := range inputs {
		env[envName(k)] = v
	}
	var out bytes.Buffer
	a := githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }), githubactions.WithWriter(&out))
	c, err := Read(a, nil)
	after(a, c, err)
	return out.String()
}

// assertMaskedFirst checks that every line of secret worth masking is
// registered with ::add-mask:: before any other line of out shows it.
func assertMaskedFirst(t *testing.T, out, secret string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	unescape := strings.NewReplacer("%25", "%", "%0D", "\r", "%0A", "\n")
	for _, s := range strings.Split(secret, "\n") {
		if s = strings.TrimSpace(s); len(s) < minMaskLine {
			continue
		}
		masked := false
		for i, l := range lines {
			if m, ok := strings.CutPrefix(l, "::add-mask::"); ok {
				masked = masked || strings.Contains(s, unescape.Replace(m))
			} else if strings.Contains(l, s) && !masked {
				t.Errorf("%q is printed on output line %d before any mask covers it:\n%s", s, i+1, out)
				break
			}
		}
		if !masked {
			t.Errorf("%q is never masked:\n%s", s, out)
		}
	}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A multi-line secret in build-push-action's quoted form reaches the build
// byte for byte, and each of its lines is masked before anything prints it.
func TestSecretsQuotedMultiLine(t *testing.T) {
	t.Parallel()
	key := fixture(t, "gpg-key.asc")
	const json = `{"type": "service_account", "key": "a,b"}`
	inputs := map[string]string{
		// As build-push-action's README writes it: the closing quote after the
		// value's last newline, a JSON value with its quotes doubled.
		"secrets": "\"GPG_KEY=" + key + "\"\n" +
			`"GCP={""type"": ""service_account"", ""key"": ""a,b""}"` + "\n" +
			"NPM_TOKEN=npm_Zq8sVd4Kx1, with comma  \n",
	}
	var c *Config
	out := readWithOutput(t, inputs, func(a *githubactions.Action, got *Config, err error) {
		if err != nil {
			t.Fatal(err)
		}
		c = got
		for _, v := range c.Secrets {
			a.Infof("%s", v) // a later leak of every value, to check the masks came first
		}
	})
	want := map[string]string{"GPG_KEY": key, "GCP": json, "NPM_TOKEN": "npm_Zq8sVd4Kx1, with comma  "}
	if len(c.Secrets) != len(want) {
		t.Errorf("secrets: %d ids, want %d", len(c.Secrets), len(want))
	}
	for id, v := range want {
		if got := string(c.Secrets[id]); got != v {
			t.Errorf("secret %s = %q, want %q", id, got, v)
		}
	}
	for _, v := range want {
		assertMaskedFirst(t, out, v)
	}
	if strings.Contains(out, "::add-mask::}\n") || strings.Contains(out, "::add-mask::\"\n") {
		t.Errorf("a one-character line was masked, starring it all over the log:\n%s", out)
	}
}

// A malformed secrets input is reported by line number: the error never shows
// a value, and every line of the input is masked before anything else prints.
func TestSecretsErrorsHideValues(t *testing.T) {
	t.Parallel()
	const leak = "ghp_9fK2mQ7xLw3RtY8vB1nC4dE6"
	for _, tc := range []struct {
		name, secrets string
		want          []string
	}{
		{"no id", "A=ok-value-1\n" + leak, []string{"secrets: line 2 is not id=value"}},
		{"empty id", "\n\n=" + leak, []string{"secrets: line 3 is not id=value"}},
		{"unclosed quote", "A=ok-value-1\n\"KEY=" + leak + "\nsecond-line-" + leak, []string{"secrets: line 2: the quote that opens there is never closed"}},
		{"stray quote closes early", "\"JSON={\"k\": \"" + leak + "\"}\nline-two-" + leak + "\"", []string{
			// build-push-action reads this as a secret with id "JSON (kept) and a
			// line without '=' (rejected): doubling inner quotes is the fix.
			"secrets: line 2 is not id=value"}},
		{"duplicate id", "A=" + leak + "\nA=other-" + leak, []string{`secrets: id "A" is given twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var msg string
			out := readWithOutput(t, map[string]string{"secrets": tc.secrets}, func(a *githubactions.Action, _ *Config, err error) {
				if err == nil {
					t.Fatal("accepted")
				}
				msg = err.Error()
				a.Errorf("%s", msg)
			})
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, leak) {
				t.Errorf("the error shows the secret:\n%s", msg)
			}
			assertMaskedFirst(t, out, tc.secrets)
		})
	}
}

// A KEY=VALUE or id=ENV_VAR line that is malformed is reported by input and
// line, never by its text: a build-arg or label line without '=' may be a
// secret a user pasted whole.
func TestKeyValueErrorsHideTheLine(t *testing.T) {
	t.Parallel()
	const leak = "ghp_9fK2mQ7xLw3RtY8vB1nC4dE6"
	for _, input := range []string{"build-args", "labels", "annotations", "secret-files", "build-contexts", "secret-envs"} {
		for _, line := range []string{leak, "=" + leak, " = " + leak} {
			t.Run(input+"/"+line[:2], func(t *testing.T) {
				t.Parallel()
				out := readWithOutput(t, map[string]string{input: "# the line after this one\n" + line}, func(_ *githubactions.Action, _ *Config, err error) {
					if err == nil {
						t.Fatal("accepted")
					}
					if want := input + ": line 2"; !strings.Contains(err.Error(), want) {
						t.Errorf("error lacks %q:\n%v", want, err)
					}
					if strings.Contains(err.Error(), leak) {
						t.Errorf("the error shows the line:\n%v", err)
					}
				})
				if strings.Contains(out, leak) {
					t.Errorf("the step's output shows the line:\n%s", out)
				}
			})
		}
	}
}

// An empty value (what a fork's run gets for a repository secret) is left out
// with a warning, as build-push-action does, not an error.
func TestSecretsEmptyValue(t *testing.T) {
	t.Parallel()
	out := readWithOutput(t, map[string]string{"secrets": "NPM_TOKEN=\nOTHER=x-value"}, func(_ *githubactions.Action, c *Config, err error) {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Secrets["NPM_TOKEN"]; ok || string(c.Secrets["OTHER"]) != "x-value" {
			t.Errorf("secrets = %q", c.Secrets)
		}
	})
	if !strings.Contains(out, "::warning::secrets: line 1: NPM_TOKEN has an empty value") {
		t.Errorf("no warning for the empty secret:\n%s", out)
	}
}

// secret-files' contents and the password are masked line by line as they are
// read, before any other output.
func TestSecretFilesAndPasswordMasked(t *testing.T) {
	t.Parallel()
	key := fixture(t, "gpg-key.asc")
	path := filepath.Join(t.TempDir(), "key.asc")
	if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "p4ss%w0rd::warning::x"
	var c *Config
	out := readWithOutput(t, map[string]string{
		"secret-files": "GPG_KEY=" + path,
		"username":     "ci",
		"password":     password,
	}, func(a *githubactions.Action, got *Config, err error) {
		if err != nil {
			t.Fatal(err)
		}
		c = got
		a.Infof("%s %s", c.Secrets["GPG_KEY"], c.Password)
	})
	if string(c.Secrets["GPG_KEY"]) != key {
		t.Errorf("secret-files value = %q, want the file's bytes", c.Secrets["GPG_KEY"])
	}
	assertMaskedFirst(t, out, key)
	assertMaskedFirst(t, out, password)
}
