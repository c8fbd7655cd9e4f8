// Starts the ecr-build-cache Go binary for this runner's OS/arch and passes its
// exit code through. Used for both the main and the post step (no npm dependencies).
//
// Binary lookup: dist/ecr-build-cache-<os>-<arch> (release tags ship them), run
// only if its SHA-256 matches dist/checksums.txt; else, on a branch or @main,
// build from source with the runner's go, pinned to go.mod's toolchain, into
// this job's RUNNER_TEMP; else fail saying how to pin a release.
//
// A source build trusts nothing another job can write: no binary is reused
// across jobs (the tool cache, the self-hosted runner's shared disk, can be
// rewritten with a matching checksum beside it; only a release's checksums.txt,
// part of the action's own commit, vouches for a binary), and it builds with a
// module and build cache of its own under RUNNER_TEMP (a shared GOMODCACHE or
// GOCACHE is restored from caches that pull_request_target jobs can write, and
// go trusts both once filled). The post step runs the main step's binary only
// if its SHA-256 is the one the main step saved in the step state, which the
// runner keeps; else it builds again. That check keeps the post step on the
// main step's build; it is no boundary against the job's own later steps,
// which run as the same user as the action's files and could rewrite this
// script as well.
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
// GOINSECURE, GOPRIVATE, GOWORK, GOOS, GOCACHE, GOMODCACHE, ...) nor the
// user's go env file, plus where modules come from, as the probe read it, and
// caches of this build's own in dir. Modules are checked against go.sum, the
// toolchain download against the default checksum database.
function goEnv(probed, dir) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(GO|CGO_)/.test(k)) env[k] = v;
  if (probed.GOPROXY) env.GOPROXY = probed.GOPROXY;
  return {
    ...env,
    GOENV: 'off', GOWORK: 'off', GOTOOLCHAIN: toolchain(), CGO_ENABLED: '0',
    // -modcacherw: the module cache can be removed after the build.
    GOFLAGS: '-mod=readonly -modcacherw',
    GOPATH: path.join(dir, 'gopath'), GOMODCACHE: path.join(dir, 'mod'), GOCACHE: path.join(dir, 'cache'),
  };
}

// probeGo reads the local go's settings (null without a go): the go env file
// still applies here, for GOPROXY only.
function probeGo() {
  return new Promise((resolve) => {
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
    const p = spawn('go', ['env', '-json', 'GOVERSION', 'GOPROXY'], { env, cwd: root, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('error', () => resolve(null));
    p.on('close', (code) => {
      try { resolve(code === 0 ? JSON.parse(out) : null); } catch { resolve(null); }
    });
  });
}

// runnerTemp is this job's own directory, which the runner empties at the
// start of every job. There is no fallback: the system's temporary directory
// is shared with every other user and job.
function runnerTemp() {
  const dir = process.env.RUNNER_TEMP;
  if (!dir || !path.isAbsolute(dir) || !fs.existsSync(dir)) {
    fail(`ecr-build-cache: RUNNER_TEMP is ${dir ? `"${dir}", which is not an existing absolute directory` : 'not set'}: ` +
      'a source build needs the job\'s own temporary directory. Run the action as a step of a GitHub Actions job, or pin a release tag, whose binary needs none.');
  }
  return dir;
}

// fromMainStep returns the binary the main step built, for the post step, if
// its SHA-256 is the one the main step saved: the runner keeps the state,
// while a later step of the job may have changed RUNNER_TEMP.
function fromMainStep() {
  const bin = process.env.STATE_launcherBinary;
  const want = process.env.STATE_launcherBinarySha256;
  if (!post || !bin || !want) return null;
  cleanups.push(() => remove(path.dirname(bin)));
  let b;
  try { b = fs.readFileSync(bin); } catch { return null; }
  if (sha256(b) !== want) {
    process.stdout.write(`::warning::ecr-build-cache: ${bin} is not the binary the main step built (SHA-256 ${sha256(b)}, want ${want}); building from source again instead of running it\n`);
    return null;
  }
  return bin;
}

// remove deletes dir, making read-only directories (a toolchain go fetched
// into the module cache) writable first. Failing leaves it to the runner,
// which empties RUNNER_TEMP after the job.
function remove(dir) {
  const writable = (d) => {
    try { fs.chmodSync(d, 0o700); } catch { return; }
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) writable(path.join(d, e.name));
  };
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    try { writable(dir); fs.rmSync(dir, { recursive: true, force: true }); } catch { /* left to the runner */ }
  }
}

async function binary() {
  const shipped = path.join(__dirname, name);
  if (fs.existsSync(shipped)) {
    verifyShipped(shipped);
    return shipped;
  }
  const built = fromMainStep();
  if (built) return built;
  const temp = runnerTemp();
  const probed = await probeGo();
  if (!probed) {
    fail('ecr-build-cache: this ref has no prebuilt binary and the runner has no Go toolchain. ' +
      'Pin a release tag (uses: <owner>/ecr-build-cache@v1), or add actions/setup-go before this step.');
  }
  const dir = fs.mkdtempSync(path.join(temp, 'ecr-build-cache-'));
  const caches = path.join(dir, 'go');
  let keep = false; // the binary, for the post step
  cleanups.push(() => { if (!keep) remove(dir); }); // kept: the caches are gone already
  const env = goEnv(probed, caches);
  const bin = path.join(dir, name);
  process.stdout.write(`Building ecr-build-cache from source with ${env.GOTOOLCHAIN} (local go: ${probed.GOVERSION}), with fresh module and build caches\n`);
  const code = await run('go', ['build', '-trimpath', '-buildvcs=false', '-ldflags=-s -w', '-o', bin, '.'], { cwd: root, env });
  if (cancelled) exit(1);
  if (code !== 0) fail('ecr-build-cache: building from source failed (see above); pin a release tag instead.');
  remove(caches);
  if (!post && process.env.GITHUB_STATE) {
    // The post step runs this binary, not one a step in between put there.
    fs.appendFileSync(process.env.GITHUB_STATE, `launcherBinary=${bin}${os.EOL}launcherBinarySha256=${sha256(fs.readFileSync(bin))}${os.EOL}`);
    keep = true;
  }
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
