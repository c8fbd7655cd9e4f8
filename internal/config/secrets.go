package config

import (
	"os"
	"strings"

	"github.com/sethvargo/go-githubactions"
)

// masker registers secret text with the runner (::add-mask::) line by line, as
// the runner matches masks within a line, each line once.
type masker struct {
	a    *githubactions.Action
	seen map[string]bool
}

// minMaskLine is the shortest line of a multi-line secret that is masked on its
// own: shorter ones ("{", "}", a lone closing quote) hold nothing secret and
// would star every such character in the log.
const minMaskLine = 3

// mask registers every line of s. A single-line value is always masked whole.
func (m *masker) mask(s string) {
	lines := strings.Split(s, "\n")
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || m.seen[l] || len(lines) > 1 && len(l) < minMaskLine {
			continue
		}
		if m.seen == nil {
			m.seen = map[string]bool{}
		}
		m.seen[l] = true
		m.a.AddMask(l)
	}
}

// readSecrets reads the secrets input (raw: build-push-action does not trim it)
// and the secret-files input into c.Secrets, masking every line of the input,
// of each value and of each file before anything can print them. Errors name
// the input and line, never the value.
func (c *Config) readSecrets(p *problems, a *githubactions.Action, m *masker, raw, files string) {
	m.mask(raw)
	es, err := entries(raw, true)
	if err != nil {
		p.add("secrets: %w", err)
	}
	for _, e := range es {
		if strings.TrimSpace(e.text) == "" {
			continue
		}
		id, v, ok := strings.Cut(e.text, "=")
		id = strings.TrimSpace(id)
		m.mask(v)
		switch {
		case !ok || id == "":
			p.add(`secrets: line %d is not id=value (not shown: it may hold a secret); write one id=value per line, quoted ("id=...") when the value spans lines`, e.line)
		case v == "":
			// As build-push-action: a fork's run gets empty secrets; that is no error.
			a.Warningf("secrets: line %d: %s has an empty value; it is not passed to the build", e.line, id)
		default:
			c.addSecret(p, id, []byte(v))
		}
	}

	paths, errs := KeyValues(files, "secret-files")
	*p = append(*p, errs...)
	for id, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			p.add("secret-files: %s: cannot read %q: %v", id, path, err)
			continue
		}
		m.mask(string(b))
		c.addSecret(p, id, b)
	}
}

func (c *Config) addSecret(p *problems, id string, v []byte) {
	if _, dup := c.Secrets[id]; dup {
		p.add("secrets: id %q is given twice (secrets, secret-files, secret-envs and github-token share ids)", id)
		return
	}
	if c.Secrets == nil {
		c.Secrets = map[string][]byte{}
	}
	c.Secrets[id] = v
}
