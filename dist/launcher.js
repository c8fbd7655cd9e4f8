// Starts the ecr-build-cache Go binary for this runner's OS/arch and passes its
// exit code through. Used for both the main and the post step (no npm dependencies).
//
// Binary lookup: dist/ecr-build-cache-<os>-<arch> (release tags ship them); else,
// on a branch or @main, build from source with the runner's go into the tool
// cache, once per source tree; else fail saying how to pin a release.
'use strict';
const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const goarch = { x64: 'amd64', ia32: '386' }[process.arch] || process.arch;
const goos = process.platform === 'win32' ? 'windows' : process.platform;

// The post step is told apart by the state the main step saved.
const post = process.env.STATE_isPost === 'true';

// fail ends the step. In the post step a missing binary means the main step
// never ran the action, so there is nothing to clean up: that is no failure.
function fail(msg) {
  if (post) {
    process.stdout.write(`${msg}\necr-build-cache post: nothing to clean up\n`);
    process.exit(0);
  }
  process.stdout.write(`::error::${msg}\n`);
  process.exit(1);
}

// sourceHash fingerprints the Go sources, so a rebuilt checkout reuses its binary.
function sourceHash(dir, h = crypto.createHash('sha256')) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && !['.git', 'dist', 'testdata', 'node_modules'].includes(e.name)) sourceHash(p, h);
    else if (e.isFile() && /(\.go|go\.mod|go\.sum)$/.test(e.name)) h.update(path.relative(root, p)).update(fs.readFileSync(p));
  }
  return h;
}

function binary() {
  const shipped = path.join(__dirname, `ecr-build-cache-${goos}-${goarch}`);
  if (fs.existsSync(shipped)) return shipped;
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) {
    fail('ecr-build-cache: this ref has no prebuilt binary and the runner has no Go toolchain. ' +
      'Pin a release tag (uses: <owner>/ecr-build-cache@v1), or add actions/setup-go before this step.');
  }
  const cache = process.env.RUNNER_TOOL_CACHE || os.tmpdir();
  const out = path.join(cache, 'ecr-build-cache', sourceHash(root).digest('hex').slice(0, 16), `ecr-build-cache-${goos}-${goarch}`);
  if (!fs.existsSync(out)) {
    process.stdout.write(`Building ecr-build-cache from source into ${out}\n`);
    // Build beside it and rename: jobs sharing a tool cache never run a half-written binary.
    const tmp = `${out}.${process.pid}.tmp`;
    const b = spawnSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', tmp, '.'], {
      cwd: root, stdio: 'inherit', env: { ...process.env, CGO_ENABLED: '0' },
    });
    if (b.status !== 0) fail('ecr-build-cache: building from source failed (see above); pin a release tag instead.');
    fs.renameSync(tmp, out);
  }
  return out;
}

if (!post && process.env.GITHUB_STATE) fs.appendFileSync(process.env.GITHUB_STATE, `isPost=true${os.EOL}`);
const r = spawnSync(binary(), post ? ['post'] : [], { stdio: 'inherit' });
if (r.error) fail(`ecr-build-cache: ${r.error.message}`);
process.exit(r.status === null ? 1 : r.status);
