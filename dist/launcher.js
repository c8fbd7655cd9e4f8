// Starts the ecr-build-cache Go binary for this runner's OS/arch and passes its
// exit code through. Used for both the main and the post step (no npm dependencies).
//
// Binary lookup: dist/ecr-build-cache-<os>-<arch> (release tags ship them), run
// only if its SHA-256 matches dist/checksums.txt; else, on a branch or @main,
// build from source with the runner's go, pinned to go.mod's toolchain, into
// this job's RUNNER_TEMP, and keep a copy in the tool cache with its hash beside
// it for later jobs; else fail saying how to pin a release.
//
// Cancellation: the runner signals this process only (SIGINT, SIGTERM 7.5 s
// later, SIGKILL 2.5 s after that). Both signals are passed on to the child,
// which stops its build and publishes nothing; a child still running after
// GRACE_MS is killed with whatever it started, so none outlives the step.
'use strict';
const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const GRACE_MS = 8000;
const root = path.join(__dirname, '..');
const goarch = { x64: 'amd64', ia32: '386' }[process.arch] || process.arch;
const goos = process.platform === 'win32' ? 'windows' : process.platform;
const name = `ecr-build-cache-${goos}-${goarch}`;

// The post step is told apart by the state the main step saved.
const post = process.env.STATE_isPost === 'true';

let child = null; // the process running now: go or the action's binary
let cancelled = null; // the first signal received
const cleanups = [];

function exit(code) {
  for (const f of cleanups) f();
  process.exit(code);
}

// fail ends the step. In the post step a missing binary means the main step
// never ran the action, so there is nothing to clean up: that is no failure.
function fail(msg) {
  if (post) {
    process.stdout.write(`${msg}\necr-build-cache post: nothing to clean up\n`);
    exit(0);
  }
  process.stdout.write(`::error::${msg}\n`);
  exit(1);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (!cancelled) {
      cancelled = sig;
      process.stdout.write(`ecr-build-cache: ${sig} received (job cancelled or timed out): stopping\n`);
      setTimeout(() => {
        if (!child) return;
        process.stdout.write(`::error::ecr-build-cache: still running ${GRACE_MS / 1000}s after ${cancelled}: killed\n`);
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      }, GRACE_MS).unref();
    }
    if (child) child.kill(sig);
  });
}

// run starts file and resolves with its exit code (1 when a signal ended it).
// Its own process group lets the grace timer kill what it started too.
function run(file, args, opts = {}) {
  if (cancelled) exit(1);
  return new Promise((resolve) => {
    child = spawn(file, args, { stdio: 'inherit', detached: true, ...opts });
    child.on('error', (err) => { child = null; fail(`ecr-build-cache: run ${file}: ${err.message}`); });
    child.on('exit', (code) => { child = null; resolve(code === null ? 1 : code); });
  });
}

function sha256(b) {
  return crypto.createHash('sha256').update(b).digest('hex');
}

// expectedHash reads file's SHA-256 from a sha256sum-format list: null when
// the list does not exist, undefined when it has no entry for file.
function expectedHash(list, file) {
  let text;
  try { text = fs.readFileSync(list, 'utf8'); } catch { return null; }
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](?:\.\/)?(.+?)\r?$/.exec(line);
    if (m && m[2] === file) return m[1];
  }
  return undefined;
}

// verifyShipped refuses a shipped binary whose SHA-256 is not the one the
// release recorded in dist/checksums.txt.
function verifyShipped(bin) {
  const list = path.join(__dirname, 'checksums.txt');
  const want = expectedHash(list, name);
  if (want === null) fail(`ecr-build-cache: ${list} is missing, so dist/${name} cannot be verified; refusing to run it. Use a release tag as published (its commit has both files).`);
  if (want === undefined) fail(`ecr-build-cache: ${list} has no entry for ${name}; refusing to run an unverified binary. Use a release tag as published.`);
  const got = sha256(fs.readFileSync(bin));
  if (got !== want) fail(`ecr-build-cache: dist/${name} has SHA-256 ${got}, but dist/checksums.txt says ${want}: the binary was altered; refusing to run it. Use a release tag as published.`);
}

// sourceHash fingerprints the Go sources and this launcher (its build flags),
// so a later job with the same checkout reuses the binary.
function sourceHash(dir, h = crypto.createHash('sha256').update(fs.readFileSync(__filename))) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && !['.git', 'dist', 'testdata', 'node_modules'].includes(e.name)) sourceHash(p, h);
    else if (e.isFile() && /(\.go|go\.mod|go\.sum)$/.test(e.name)) h.update(path.relative(root, p)).update(fs.readFileSync(p));
  }
  return h;
}

// toolchain is the Go toolchain go.mod asks for: its toolchain line, else its go line.
function toolchain() {
  const mod = fs.readFileSync(path.join(root, 'go.mod'), 'utf8');
  const t = /^toolchain\s+(go\S+)\s*$/m.exec(mod);
  if (t) return t[1];
  const v = /^go\s+(1\.(\d+)(\.\d+)?)\s*$/m.exec(mod);
  if (!v) fail('ecr-build-cache: go.mod has no go line to pin the toolchain to.');
  // Since Go 1.21 "go 1.N" names a language version; its first release is go1.N.0.
  return `go${v[1]}${!v[3] && Number(v[2]) >= 21 ? '.0' : ''}`;
}

// goEnv is the environment of the source build: the runner's, without any Go
// or cgo setting it carries (GOFLAGS=-mod=mod, GONOSUMDB, GOSUMDB=off,
// GOINSECURE, GOPRIVATE, GOWORK, GOOS, ...) nor the user's go env file, plus
// where modules come from and where the caches are, as the probe read them.
// Modules are checked against go.sum, the toolchain download against the
// default checksum database.
function goEnv(probed) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(GO|CGO_)/.test(k)) env[k] = v;
  for (const k of ['GOPROXY', 'GOMODCACHE', 'GOCACHE', 'GOPATH']) if (probed[k]) env[k] = probed[k];
  return { ...env, GOENV: 'off', GOWORK: 'off', GOFLAGS: '-mod=readonly', GOTOOLCHAIN: toolchain(), CGO_ENABLED: '0' };
}

// probeGo reads the local go's settings (null without a go): the go env file
// still applies here, for GOPROXY and the cache locations only.
function probeGo() {
  return new Promise((resolve) => {
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
    const p = spawn('go', ['env', '-json', 'GOVERSION', 'GOPROXY', 'GOMODCACHE', 'GOCACHE', 'GOPATH'], { env, cwd: root, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('error', () => resolve(null));
    p.on('close', (code) => {
      try { resolve(code === 0 ? JSON.parse(out) : null); } catch { resolve(null); }
    });
  });
}

// stage is this job's own directory for a binary to run, removed at exit.
function stage() {
  const dir = fs.mkdtempSync(path.join(process.env.RUNNER_TEMP || os.tmpdir(), 'ecr-build-cache-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, name);
}

// fromToolCache copies a binary an earlier job built into this job's stage,
// if its hash matches the one recorded beside it, and returns the copy.
function fromToolCache(cached) {
  let b;
  try { b = fs.readFileSync(cached); } catch { return null; }
  const want = expectedHash(path.join(path.dirname(cached), 'checksums.txt'), name);
  if (!want) return null; // left half-written: build again
  if (sha256(b) !== want) {
    process.stdout.write(`::warning::ecr-build-cache: ${cached} does not match the SHA-256 recorded when it was built; building from source again instead of running it\n`);
    return null;
  }
  const bin = stage();
  fs.writeFileSync(bin, b, { mode: 0o755 });
  return bin;
}

// keep puts a copy of a fresh build in the tool cache with its hash beside it;
// renames make sure no job reads a half-written file. Failing only costs a rebuild.
function keep(bin, cached) {
  try {
    fs.mkdirSync(path.dirname(cached), { recursive: true });
    const b = fs.readFileSync(bin);
    const tmp = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, b, { mode: 0o755 });
    fs.renameSync(tmp, cached);
    fs.writeFileSync(tmp, `${sha256(b)}  ${name}\n`);
    fs.renameSync(tmp, path.join(path.dirname(cached), 'checksums.txt'));
  } catch (err) {
    process.stdout.write(`ecr-build-cache: could not keep the binary in the tool cache (${err.message}); the next job builds it again\n`);
  }
}

async function binary() {
  const shipped = path.join(__dirname, name);
  if (fs.existsSync(shipped)) {
    verifyShipped(shipped);
    return shipped;
  }
  const probed = await probeGo();
  if (!probed) {
    fail('ecr-build-cache: this ref has no prebuilt binary and the runner has no Go toolchain. ' +
      'Pin a release tag (uses: <owner>/ecr-build-cache@v1), or add actions/setup-go before this step.');
  }
  const cache = process.env.RUNNER_TOOL_CACHE || os.tmpdir();
  const cached = path.join(cache, 'ecr-build-cache', sourceHash(root).digest('hex').slice(0, 16), name);
  const reused = fromToolCache(cached);
  if (reused) return reused;

  const env = goEnv(probed);
  const bin = stage();
  process.stdout.write(`Building ecr-build-cache from source with ${env.GOTOOLCHAIN} (local go: ${probed.GOVERSION})\n`);
  const code = await run('go', ['build', '-trimpath', '-buildvcs=false', '-ldflags=-s -w', '-o', bin, '.'], { cwd: root, env });
  if (cancelled) exit(1);
  if (code !== 0) fail('ecr-build-cache: building from source failed (see above); pin a release tag instead.');
  keep(bin, cached);
  return bin;
}

async function main() {
  // First: whatever happens next, the post step must know it is the post step.
  if (!post && process.env.GITHUB_STATE) fs.appendFileSync(process.env.GITHUB_STATE, `isPost=true${os.EOL}`);
  const bin = await binary();
  const code = await run(bin, post ? ['post'] : []);
  // A cancelled step never reports success, even if the child finished first.
  exit(cancelled && code === 0 ? 1 : code);
}

main();
