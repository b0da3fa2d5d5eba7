// The peers of the inference benchmark: other engines running SmolLM2-135M-Instruct Q4_1 (the
// GGUF `./build.sh models` fetches), measured the same way paritylab's own contenders are.
//
//   llama.cpp  native, `llama-bench` built from the llama.cpp tree vendored in the PyPI sdist of
//              llama-cpp-python 0.3.36 (CPU only, Release, GGML_NATIVE=OFF, like
//              tests/data/llamacpp/README.md), into .cache/bench/ once.
//   candle     native, bench/candle (a dev-only Cargo project on crates.io's candle-core and
//              candle-transformers, `quantized_llama`), built once into bench/candle/target for
//              the same instruction set as the llama.cpp build (AVX2, FMA, F16C; see its
//              .cargo/config.toml: without it candle's Q4_1 kernel, plain Rust, is half as fast).
//   wllama     llama.cpp compiled to wasm (npm @wllama/wllama, wasm SIMD, pthreads at 2 threads) in
//              headless Chromium, on a cross-origin isolated page served from bench/wllama by
//              bench/serve.mjs.
//
// Each peer is a contender per thread count (1 and 2): `{ name, where, threads, setup(),
// round(), teardown(), versions() }`, where `round()` measures once and resolves to tokens/s
// `{ pp16, pp64, tg32 }`: pp16 and pp64 process a 16- and a 64-token prompt in one batch
// (ending with the last position's logits), tg32 decodes 32 tokens one by one (llama-bench from an
// empty cache, candle and wllama after one start token). The runner (bench/infer.mjs) interleaves them: for each round, every contender once.
//
// Token ids: candle and wllama run the fixed ids of bench/prompts.json; llama-bench always draws
// its own random ids (it cannot be given any). The speed of a forward does not depend on the ids.
//
// Everything is fetched from package registries only (PyPI, crates.io, npm) and cached in
// git-ignored folders; nothing is downloaded at run time by the browser page.

import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MODEL = path.join(ROOT, '.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf');
export const PROMPTS = JSON.parse(readFileSync(path.join(ROOT, 'bench/prompts.json'), 'utf8'));
const CACHE = path.join(ROOT, '.cache/bench');
const PIP_CACHE = path.join(ROOT, '.cache/pip');

const log = (msg) => process.stderr.write(`\x1b[1;34m==>\x1b[0m ${msg}\n`);

/** Run a build step with its output appended to `logFile` as it goes (or shown, without one);
 * on failure, show the log's end and throw. Returns the seconds it took. */
function step(what, cmd, args, { cwd = ROOT, env = process.env, logFile } = {}) {
  const t0 = Date.now();
  let fd = 'inherit';
  if (logFile) {
    appendFileSync(logFile, `$ ${cmd} ${args.join(' ')}\n`);
    fd = openSync(logFile, 'a');
  }
  const r = spawnSync(cmd, args, { cwd, env, stdio: ['ignore', fd, fd] });
  if (logFile) closeSync(fd);
  if (r.status !== 0) {
    if (logFile) process.stderr.write(readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n'));
    throw new Error(`${what} failed (${r.error?.message ?? `exit ${r.status}`})${logFile ? `, see ${logFile}` : ''}`);
  }
  return (Date.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------------------------
// llama.cpp

const LLAMA_CPP_PYTHON = '0.3.36';
const SDIST = `llama_cpp_python-${LLAMA_CPP_PYTHON}.tar.gz`;
const SDIST_SHA256 = '832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e';
const SDIST_DIR = path.join(CACHE, `llama_cpp_python-${LLAMA_CPP_PYTHON}`);
const LLAMA_SRC = path.join(SDIST_DIR, 'vendor/llama.cpp');
const LLAMA_BUILD = path.join(CACHE, 'llama.cpp-build');
const LLAMA_BENCH = path.join(LLAMA_BUILD, 'bin/llama-bench');
// CMake from PyPI when the system has none (the version tests/data/llamacpp/README.md used).
const CMAKE_PYPI = 'cmake==4.4.5';
const CMAKE_VENV = path.join(CACHE, 'cmake-venv');

const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function cmake() {
  if (which('cmake')) return 'cmake';
  const bin = path.join(CMAKE_VENV, 'bin/cmake');
  if (!existsSync(bin)) {
    log(`llama.cpp: no cmake on the system, installing ${CMAKE_PYPI} from PyPI into ${path.relative(ROOT, CMAKE_VENV)}`);
    step('python3 -m venv', 'python3', ['-m', 'venv', CMAKE_VENV]);
    step('pip install cmake', path.join(CMAKE_VENV, 'bin/pip'), ['install', '--quiet', '--disable-pip-version-check', CMAKE_PYPI]);
  }
  return bin;
}

/** Build llama-bench once (10-15 min on 2 cores); returns the build time or 0. */
export function ensureLlamaBench() {
  if (existsSync(LLAMA_BENCH)) return 0;
  const t0 = Date.now();
  mkdirSync(CACHE, { recursive: true });
  if (!existsSync(path.join(LLAMA_SRC, 'CMakeLists.txt'))) {
    const sdist = path.join(PIP_CACHE, SDIST);
    if (!existsSync(sdist)) {
      log(`llama.cpp: the llama-cpp-python ${LLAMA_CPP_PYTHON} sdist from PyPI (77 MB, once)`);
      mkdirSync(PIP_CACHE, { recursive: true });
      // Only llama-cpp-python as source: with `--no-binary :all:` pip would also build its build
      // dependencies (cmake!) from source just to read the sdist's metadata.
      step('pip download', 'python3', ['-m', 'pip', 'download', '--quiet', '--no-deps', '--disable-pip-version-check',
        '--no-binary', 'llama-cpp-python', `llama-cpp-python==${LLAMA_CPP_PYTHON}`, '-d', PIP_CACHE]);
    }
    const sum = execFileSync('sha256sum', [sdist]).toString().split(' ')[0];
    if (sum !== SDIST_SHA256) throw new Error(`${sdist} has SHA-256 ${sum}, expected ${SDIST_SHA256}`);
    // The whole sdist: vendor/llama.cpp's git metadata (its commit) lives in .git/modules/.
    // Unpacked aside, then moved, so that an interrupted run leaves no half tree behind.
    const tmp = `${SDIST_DIR}.part`;
    rmSync(tmp, { recursive: true, force: true });
    rmSync(SDIST_DIR, { recursive: true, force: true });
    mkdirSync(tmp);
    step('tar', 'tar', ['xzf', sdist, '--no-same-owner', '-C', tmp]);
    renameSync(path.join(tmp, path.basename(SDIST_DIR)), SDIST_DIR);
    rmSync(tmp, { recursive: true, force: true });
  }
  const logFile = path.join(CACHE, 'llama.cpp-build.log');
  rmSync(logFile, { force: true });
  const cm = cmake();
  log(`llama.cpp: building llama-bench (CPU, Release, GGML_NATIVE=OFF; 10-15 min on 2 cores, once; log in ${path.relative(ROOT, logFile)})`);
  step('cmake configure', cm, ['-S', LLAMA_SRC, '-B', LLAMA_BUILD, '-DCMAKE_BUILD_TYPE=Release', '-DGGML_NATIVE=OFF',
    '-DLLAMA_OPENSSL=OFF', '-DGGML_OPENMP=OFF', '-DBUILD_SHARED_LIBS=OFF', '-DLLAMA_BUILD_TESTS=OFF',
    '-DLLAMA_BUILD_SERVER=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_APP=OFF'], { logFile });
  step('cmake build', cm, ['--build', LLAMA_BUILD, '-j2', '--target', 'llama-bench'], { logFile });
  const secs = (Date.now() - t0) / 1000;
  log(`llama.cpp: llama-bench built in ${secs.toFixed(0)} s`);
  return secs;
}

function llamaCppCommit() {
  try {
    return execFileSync('git', ['-C', LLAMA_SRC, 'rev-parse', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

function llamaCpp(threads) {
  let seen = {}; // what llama-bench reports about itself
  return {
    name: 'llama.cpp',
    where: 'native',
    threads,
    async setup() {
      ensureLlamaBench();
    },
    // One repetition per call (-r 1) so that the runner's rounds interleave; llama-bench warms up
    // first (one untimed run of each test), then pp16, pp64 and tg32.
    async round() {
      const out = execFileSync(LLAMA_BENCH, ['-m', MODEL, '-p', '16,64', '-n', '32', '-t', String(threads), '-r', '1', '-o', 'json'],
        { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
      const result = {};
      for (const t of JSON.parse(out.toString())) {
        seen = { build_commit: t.build_commit, build_number: t.build_number, cpu_info: t.cpu_info, backends: t.backends, type_k: t.type_k, flash_attn: t.flash_attn, n_batch: t.n_batch, n_ubatch: t.n_ubatch };
        const key = t.n_gen === 0 ? `pp${t.n_prompt}` : `tg${t.n_gen}`;
        result[key] = t.avg_ts;
      }
      return result;
    },
    async teardown() {},
    versions: () => ({
      source: `PyPI llama-cpp-python ${LLAMA_CPP_PYTHON} sdist, vendor/llama.cpp`,
      commit: llamaCppCommit(),
      build: 'CPU, Release, GGML_NATIVE=OFF, GGML_OPENMP=OFF, static',
      ...seen,
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// candle

const CANDLE_DIR = path.join(ROOT, 'bench/candle');
const CANDLE_BIN = path.join(CANDLE_DIR, 'target/release/candle-bench');

/** Build bench/candle (cargo, --locked; a no-op when up to date); returns the seconds it took. */
export function ensureCandle() {
  const fresh = !existsSync(CANDLE_BIN);
  if (fresh) log('candle: building bench/candle (release; ~10 min on 2 cores, once)');
  // bench/candle/.cargo/config.toml sets the instruction set (that of the llama.cpp build, AVX2):
  // a RUSTFLAGS from the environment would silently replace it.
  const { RUSTFLAGS, CARGO_ENCODED_RUSTFLAGS, ...env } = process.env;
  const secs = step('cargo build (bench/candle)', 'cargo', ['build', '--release', '--locked', '--quiet'], { cwd: CANDLE_DIR, env });
  if (fresh) log(`candle: built in ${secs.toFixed(0)} s`);
  return fresh ? secs : 0;
}

function lockedVersion(lockFile, name) {
  const m = readFileSync(lockFile, 'utf8').match(new RegExp(`name = "${name}"\\nversion = "([^"]+)"`));
  return m ? m[1] : 'unknown';
}

function candle(threads) {
  // Both of candle's CPU pools read these when first used (see bench/candle/src/main.rs).
  const env = { ...process.env, RAYON_NUM_THREADS: String(threads), CANDLE_NUM_THREADS: String(threads) };
  return {
    name: 'candle',
    where: 'native',
    threads,
    async setup() {
      ensureCandle();
    },
    // A fresh process per round, like llama-bench: load, warm up, measure once.
    async round() {
      const out = execFileSync(CANDLE_BIN, [MODEL, path.join(ROOT, 'bench/prompts.json')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const r = JSON.parse(out.toString());
      if (r.threads !== threads) throw new Error(`candle ran on ${r.threads} threads, not ${threads}`);
      return { pp16: r.pp16, pp64: r.pp64, tg32: r.tg32 };
    },
    async teardown() {},
    versions: () => ({
      build: 'release, x86-64 with AVX2, FMA, F16C, BMI2 (bench/candle/.cargo/config.toml)',
      'candle-core': lockedVersion(path.join(CANDLE_DIR, 'Cargo.lock'), 'candle-core'),
      'candle-transformers': lockedVersion(path.join(CANDLE_DIR, 'Cargo.lock'), 'candle-transformers'),
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// wllama

const WLLAMA_DIR = path.join(ROOT, 'node_modules/@wllama/wllama');

/** The headless browser and the page server, shared by the wllama contenders (counted). */
const shared = { users: 0, browser: null, server: null };
async function acquireBrowser() {
  if (shared.users++ === 0) {
    const { startStatic } = await import('./serve.mjs');
    const { launch } = await import('../tests/e2e/helpers.mjs');
    shared.server = await startStatic({
      '/bench/': path.join(ROOT, 'bench/wllama'),
      '/wllama/': path.join(WLLAMA_DIR, 'esm'),
      '/models/': path.dirname(MODEL),
    });
    shared.browser = await launch();
  }
  return shared;
}
async function releaseBrowser() {
  if (--shared.users === 0) {
    await shared.browser?.close();
    shared.server?.stop();
    Object.assign(shared, { browser: null, server: null });
  }
}

/** The llama.cpp version compiled into wllama's wasm (the string its start function returns). */
function wllamaLlamaCpp() {
  const wasm = readFileSync(path.join(WLLAMA_DIR, 'esm/wasm/wllama.wasm')).toString('latin1');
  const m = wasm.match(/"version":"([^"]+)"/);
  return m ? m[1] : 'unknown';
}

function wllama(threads) {
  let page = null;
  let problems = [];
  return {
    name: 'wllama',
    where: 'browser',
    threads,
    async setup() {
      if (!existsSync(path.join(WLLAMA_DIR, 'esm/wasm/wllama.wasm'))) {
        throw new Error('@wllama/wllama is not installed: run npm ci (./build.sh setup)');
      }
      const { browser, server } = await acquireBrowser();
      page = await browser.newPage();
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${server.url}bench/index.html`);
      await page.waitForSelector('body[data-ready=true]');
      const info = await page.evaluate((o) => window.bench.load(o), { modelUrl: `/models/${path.basename(MODEL)}`, threads });
      if (!info.crossOriginIsolated) throw new Error('the wllama page is not cross-origin isolated');
      if (info.threads !== threads || info.multithread !== threads > 1) {
        throw new Error(`wllama runs ${info.threads} thread(s) (multi-thread build: ${info.multithread}), not ${threads}`);
      }
      await this.round(); // warm-up, untimed (wasm tiering, first use of the buffers)
    },
    async round() {
      try {
        return await page.evaluate((p) => window.bench.round(p), PROMPTS);
      } catch (e) {
        throw new Error(`wllama (${threads} threads): ${e.message}${problems.length ? `\npage errors: ${problems.join('\n')}` : ''}`);
      }
    },
    async teardown() {
      if (page) {
        await page.evaluate(() => window.bench.exit()).catch(() => {});
        await page.close();
        page = null;
        await releaseBrowser();
      }
    },
    versions: () => ({
      '@wllama/wllama': JSON.parse(readFileSync(path.join(WLLAMA_DIR, 'package.json'), 'utf8')).version,
      'llama.cpp inside': wllamaLlamaCpp(),
      chromium: shared.browser?.version() ?? 'unknown',
    }),
  };
}

// ---------------------------------------------------------------------------------------------

export const PEERS = { 'llama.cpp': llamaCpp, candle, wllama };

/**
 * The peers as contenders, one per peer and thread count, in the order the runner interleaves
 * them. `peers`: names from PEERS (default all), `threads`: thread counts (default 1 and 2).
 */
export function contenders({ peers = Object.keys(PEERS), threads = [1, 2] } = {}) {
  const out = [];
  for (const name of peers) {
    if (!PEERS[name]) throw new Error(`unknown peer ${name} (known: ${Object.keys(PEERS).join(', ')})`);
    for (const t of threads) out.push(PEERS[name](t));
  }
  return out;
}
