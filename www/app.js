// The playground: pick a model, a prompt and two paths, compare them, read where and why they
// part. All compute runs in the engine's worker; the page only arranges it. The whole state lives
// in the URL hash (encoded by the engine), so a link reproduces a comparison.

import { CancelledError, Engine } from './js/engine.js';
import { Inspector } from './js/inspector.js';
import { SourcePanel } from './js/source.js';
import { PromptEditor } from './js/prompt.js';
import { PathsEditor } from './js/paths.js';
import { Results } from './js/results.js';
import { DumpsPanel, isGguf } from './js/dumps.js';
import { fetchModel } from './js/fetcher.js';
import { $, el, replace } from './js/dom.js';
import { bytes } from './js/format.js';

const engine = new Engine();
const app = {
  source: null, // {synth} | {url} | {file: {name, size, sha256}}
  fileHandle: null, // the File behind a {file} source, to reload after a restart
  wanted: null, // a file a shared link asks for
  runnable: false,
  report: null,
  view: {},
  pieces: new Map(),
  busy: false,
  download: null, // AbortController of a running download
};

// ---- panels ------------------------------------------------------------------------------

const inspector = new Inspector($('#model'), { onSelectTensor: (name) => engine.call('tensor_stats', { name }) });
const source = new SourcePanel($('#source'), {
  onLoad: (src) => act(() => loadSource(src, { compareAfter: true })),
  // A GGUF dropped anywhere is the model; anything else is a dump.
  onDrop: async (files) => {
    if (files.length === 1 && (await isGguf(files[0]))) act(() => loadSource({ file: files[0] }, { compareAfter: true }));
    else dumps.addFiles(files);
  },
});
const dumps = new DumpsPanel($('#dumps'), engine, {
  onUse: async (side, text, preview) => {
    if (!(await paths.setText(side, text, { quiet: true }))) return;
    if (preview.token_ids) prompt.set({ ids: JSON.parse(preview.token_ids) });
    dumpsChanged();
  },
  onChange: async (removed) => {
    // A side that used a removed dump goes back to the hf path.
    for (const side of ['a', 'b']) {
      if (paths.isDump(side) && !dumps.lookup(paths.texts()[side === 'a' ? 0 : 1])) await paths.setText(side, 'hf', { quiet: true });
    }
    if (removed === undefined) {
      // The prefix of a dump in use may have changed: refresh its side's text.
      for (const side of ['a', 'b']) {
        const name = paths.isDump(side) ? dumps.nameOf(paths.texts()[side === 'a' ? 0 : 1]) : null;
        if (name !== null) await paths.setText(side, dumps.text(name), { quiet: true });
      }
    }
    dumpsChanged();
  },
});
const paths = new PathsEditor($('#paths'), engine, {
  onChange: () => dumpsChanged(),
  dumpLookup: (text) => dumps.lookup(text),
});
const prompt = new PromptEditor($('#prompt'), engine, {
  paths: () => paths.texts(),
  onChange: () => {},
  dumpTokens: (text) => {
    const d = dumps.lookup(text);
    return d?.preview.token_ids ? JSON.parse(d.preview.token_ids) : null;
  },
});

/** A side became or stopped being a dump: what a dump cannot do is switched off, and said. */
function dumpsChanged() {
  const anyDump = paths.isDump('a') || paths.isDump('b');
  for (const id of ['#explain', '#isolation']) {
    $(id).disabled = anyDump;
    $(id).closest('label').title = anyDump ? 'needs two built-in paths: a dump cannot be re-run' : '';
  }
  $('#dump-side-note').hidden = !anyDump;
  prompt.updateChips();
  updateHash();
}
const results = new Results($('#results'), {
  fetchStage: (name, position, isolated) => engine.call('compared_stage', { name, position, isolated }),
  onView: (view) => {
    app.view = { ...view };
    updateHash();
  },
  tokenText: (id) => app.pieces.get(id) ?? null,
});

// ---- progress, errors, cancel ------------------------------------------------------------

function showProgress(label, { value = null, detail = '' } = {}) {
  const box = $('#progress');
  box.hidden = false;
  $('#progress-label').textContent = label;
  const bar = $('#progress-bar');
  if (value === null) bar.removeAttribute('value');
  else bar.value = value;
  $('#progress-detail').textContent = detail;
}

function hideProgress() {
  $('#progress').hidden = true;
}

function showError(message) {
  const box = $('#setup-error');
  box.hidden = !message;
  box.textContent = message || '';
}

function setBusy(busy) {
  app.busy = busy;
  document.body.classList.toggle('busy', busy);
  $('#compare-button').disabled = busy || !app.runnable;
}

/** Run one user action: busy state, errors shown, cancellation understood. */
async function act(fn) {
  if (app.busy) return;
  setBusy(true);
  showError('');
  try {
    await fn();
  } catch (err) {
    if (err instanceof CancelledError || err.name === 'AbortError') {
      showError('Cancelled.');
      // A cancelled computation restarted the engine: load the model into the new one.
      if (err instanceof CancelledError) await reload();
    } else {
      showError(err.message);
    }
  } finally {
    hideProgress();
    setBusy(false);
    updateMemory();
  }
}

$('#cancel').addEventListener('click', () => {
  if (app.download) {
    app.download.abort();
    return;
  }
  // Computations inside wasm cannot be interrupted: restart the engine (the running action sees
  // its call cancelled and reloads the model).
  showProgress('Cancelling: restarting the engine…');
  engine.restart();
});

/** Load the current model into a freshly started engine. */
async function reload() {
  const src = app.fileHandle ? { file: app.fileHandle } : app.source;
  if (!src) return;
  showProgress('Reloading the model…');
  try {
    await loadSource(src, { compareAfter: false, quiet: true });
    await dumps.restore();
  } catch (err) {
    showError(`Cancelled; the model could not be reloaded: ${err.message}`);
  }
}

// ---- models ------------------------------------------------------------------------------

/** The engine lost its model (a load failed after it dropped the old one). */
function clearModel() {
  app.runnable = false;
  app.source = null;
  app.fileHandle = null;
  app.report = null;
  inspector.hide();
  $('#results').hidden = true;
  $('#show-details').disabled = true;
  $('#download-model').disabled = true;
  $('#compare-button').disabled = true;
  prompt.setModel(false, false);
  source.showModel({ title: 'No model loaded', detail: 'generate one, drop a file, or fetch a URL' });
}

/** Hand bytes to the engine; a failure leaves it without a model. */
async function engineLoad(type, payload, transfer = []) {
  try {
    return await engine.call(type, payload, transfer);
  } catch (err) {
    if (!(err instanceof CancelledError)) clearModel();
    throw err;
  }
}

/** Load a model from `src` ({synth: text} | {file: File} | {url: text}); returns the inspection. */
async function loadSource(src, { compareAfter = false, quiet = false } = {}) {
  let info;
  let title;
  let detail;
  const started = performance.now();
  if (src.synth !== undefined) {
    showProgress('Generating the synthetic model…');
    const parsed = await engine.call('synth_spec', { text: src.synth });
    source.fillSynth(parsed.spec);
    info = await engineLoad('synthetic', { spec: parsed.text });
    app.source = { synth: parsed.text };
    app.fileHandle = null;
    const s = parsed.spec;
    title = parsed.text === (await engine.call('synth_spec', { text: '' })).text ? "Source issue's reproducer (synthetic)" : `Synthetic ${s.arch}`;
    detail = `${s.arch}, dim ${s.hidden}, ${s.heads} heads / ${s.kv_heads} KV × ${s.head_dim}, FFN ${s.ffn}, ${s.layers} layer${s.layers > 1 ? 's' : ''}, vocab ${s.vocab}, ${s.type}`;
    source.showTab('src-tab-synth');
  } else if (src.file) {
    const file = src.file;
    showProgress(`Reading ${file.name} (${bytes(file.size)})…`);
    const buffer = await file.arrayBuffer();
    showProgress(`Parsing ${file.name}…`);
    info = await engineLoad('load', { bytes: buffer, name: file.name }, [buffer]);
    const sha256 = await engine.call('file_sha256');
    app.source = { file: { name: file.name, size: file.size, sha256 } };
    app.fileHandle = file;
    title = file.name;
    detail = `${bytes(file.size)}, read from this computer`;
    if (app.wanted && app.wanted.sha256 !== sha256) {
      showError(`This is not the file the link was made with (its SHA-256 is ${sha256.slice(0, 12)}…, the link's ${app.wanted.sha256.slice(0, 12)}…); the numbers may differ.`);
    }
    app.wanted = null;
  } else if (src.url !== undefined) {
    const url = src.url;
    app.download = new AbortController();
    try {
      showProgress(`Downloading ${url}…`, { value: null });
      const buffer = await fetchModel(url, {
        signal: app.download.signal,
        onProgress: ({ received, total, speed }) =>
          showProgress(`Downloading ${new URL(url).pathname.split('/').pop() || url}`, {
            value: total ? received / total : null,
            detail: `${bytes(received)}${total ? ` of ${bytes(total)}` : ''} · ${bytes(speed)}/s`,
          }),
      });
      app.download = null;
      showProgress('Parsing…');
      info = await engineLoad('load', { bytes: buffer, name: url.split('/').pop() }, [buffer]);
    } finally {
      app.download = null;
    }
    app.source = { url };
    app.fileHandle = null;
    title = url.split('/').pop() || url;
    detail = `${bytes(info.file_size)} from ${new URL(url).host}`;
    $('#url-input').value = url;
  } else {
    throw new Error('unknown model source');
  }
  const secs = ((performance.now() - started) / 1000).toFixed(2);
  inspector.show(info, `${title}: ${detail}; loaded in ${secs} s.`);
  $('#model').hidden = $('#show-details').getAttribute('aria-expanded') !== 'true';
  source.showModel({ title, detail: `${info.architecture || 'no architecture'} · ${detail}`, sha256: app.source.file?.sha256 });
  $('#show-details').disabled = false;
  $('#download-model').disabled = false;
  await describeModel(quiet);
  if (compareAfter && app.runnable) await compare();
  return info;
}

/** After a load: can it run, does it have a tokenizer. */
async function describeModel(quiet) {
  try {
    const model = await engine.call('model_info');
    app.runnable = true;
    prompt.setModel(true, Boolean(model.tokenizer));
    if (model.tokenizer_error && !quiet) showError(`The model runs on token ids; its tokenizer cannot be used: ${model.tokenizer_error}`);
  } catch (err) {
    app.runnable = false;
    prompt.setModel(false, false);
    if (!quiet) showError(err.message);
  }
  $('#compare-button').disabled = !app.runnable;
}

// ---- comparing ---------------------------------------------------------------------------

function options() {
  const number = (id) => {
    const v = $(id).value.trim();
    if (v === '') return undefined;
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) throw new Error(`${$(id).closest('label').textContent.trim().split(/\s/)[0]} must be a number ≥ 0.`);
    return x;
  };
  const atol = number('#tol-atol');
  const rtol = number('#tol-rtol');
  if ((atol === undefined) !== (rtol === undefined)) throw new Error('Give atol and rtol together (or neither).');
  const multiple = number('#tol-multiple');
  if (!(multiple > 0)) throw new Error('The noise multiple must be a number above 0.');
  const anyDump = paths.isDump('a') || paths.isDump('b');
  return {
    noise_multiple: multiple,
    atol,
    rtol,
    isolation: anyDump ? 'off' : $('#isolation').value,
    explain: anyDump ? false : $('#explain').checked,
  };
}

async function compare() {
  await paths.commit();
  const promptValue = prompt.engineValue();
  const [a, b] = paths.texts();
  const opts = options();
  const started = performance.now();
  showProgress('Comparing: running path A and its f64 twin…', { value: 0 });
  const anyDump = paths.isDump('a') || paths.isDump('b');
  const request = anyDump ? { ...opts, dump: dumps.options() } : opts;
  const report = await engine.call('compare', { a, b, prompt: promptValue, options: request }, [], (p) => {
    const label = { A: 'running path A and its f64 twin', B: 'running path B and its f64 twin', isolation: 'isolating each op', explain: 'explaining: flipping conventions' }[p.step] || p.step;
    const value = p.step === 'explain' ? 0.5 + 0.5 * (p.done / Math.max(1, p.total)) : p.step === 'isolation' ? 0.45 : p.done / 2 * 0.4;
    showProgress(`Comparing: ${label}…`, { value, detail: p.step === 'explain' ? `${p.done} runs (at most ${p.total})` : '' });
  });
  const ids = new Set([...report.compared_tokens, ...report.top_k.flatMap((t) => [...t.a, ...t.b].map((c) => c.id))]);
  const list = [...ids];
  const pieces = await engine.call('pieces', { ids: list });
  app.pieces = new Map(pieces ? list.map((id, i) => [id, pieces[i]]) : []);
  app.report = report;
  for (const side of ['a', 'b']) {
    const dumpSide = report[side].kind === 'dump';
    $(`#export-dump-${side}`).disabled = dumpSide;
    $(`#export-dump-${side}`).title = dumpSide ? 'this side is an imported dump: you have its file' : '';
  }
  $('#copy-link').disabled = anyDump;
  $('#copy-link').title = anyDump ? 'a dump is a file on this computer: a link cannot carry it' : '';
  results.show(report, app.view);
  app.view = { ...results.view };
  $('#results').dataset.ms = String(Math.round(performance.now() - started));
  await updateHash();
}

$('#compare-button').addEventListener('click', () => act(async () => {
  app.view = {};
  await compare();
}));
for (const id of ['#tol-multiple', '#tol-atol', '#tol-rtol', '#isolation', '#explain']) $(id).addEventListener('change', () => updateHash());

// ---- the URL ------------------------------------------------------------------------------

function currentState() {
  let promptValue;
  try {
    promptValue = prompt.value();
  } catch {
    return null;
  }
  let opts;
  try {
    opts = options();
  } catch {
    return null;
  }
  if (!app.source) return null;
  // A dump is a local file: a link cannot carry it (the URL keeps the last path-only state).
  if (paths.isDump('a') || paths.isDump('b')) return null;
  return {
    v: 1,
    model: app.source,
    prompt: promptValue,
    a: paths.texts()[0],
    b: paths.texts()[1],
    tolerances: { noise_multiple: opts.noise_multiple, atol: opts.atol, rtol: opts.rtol },
    isolation: opts.isolation,
    explain: opts.explain,
    view: { position: app.view.position ?? undefined, stage: app.view.stage ?? undefined },
  };
}

async function updateHash() {
  const state = currentState();
  if (!state) return;
  try {
    const hash = await engine.call('encode_state', { state });
    history.replaceState(null, '', `#${hash}`);
  } catch {
    // An invalid field: the URL keeps the last valid state.
  }
}

/** Put a decoded state into the controls and load its model (then compare). */
async function applyState(state) {
  $('#tol-multiple').value = state.tolerances.noise_multiple;
  $('#tol-atol').value = state.tolerances.atol ?? '';
  $('#tol-rtol').value = state.tolerances.rtol ?? '';
  $('#isolation').value = state.isolation;
  $('#explain').checked = state.explain;
  await paths.set(state.a, state.b);
  prompt.set(state.prompt);
  app.view = { position: state.view.position ?? null, stage: state.view.stage ?? null };
  const m = state.model;
  if (m.synth !== undefined) return loadSource({ synth: m.synth }, { compareAfter: true });
  if (m.url !== undefined) return loadSource({ url: m.url }, { compareAfter: true });
  app.wanted = m.file;
  app.source = null;
  source.askForFile(m.file);
  return null;
}

// ---- exports ------------------------------------------------------------------------------

function download(name, data, type) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function exportNote(text) {
  $('#export-note').textContent = text;
}

$('#copy-link').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(location.href);
    exportNote('Link copied.');
  } catch {
    exportNote(`Copy this link: ${location.href}`);
  }
});
$('#export-md').addEventListener('click', async () => {
  const md = await engine.call('report_markdown', { shareUrl: location.href });
  download('paritylab-report.md', md, 'text/markdown');
});
$('#export-json').addEventListener('click', () => download('paritylab-report.json', JSON.stringify(app.report, null, 2), 'application/json'));
for (const side of ['a', 'b']) {
  $(`#export-dump-${side}`).addEventListener('click', async () => {
    const buffer = await engine.call('dump_path', { side });
    download(`paritylab-${side}.safetensors`, buffer, 'application/octet-stream');
  });
}
$('#download-model').addEventListener('click', async () => {
  const buffer = await engine.call('file_bytes');
  const name = app.source?.file?.name || (app.source?.url ? app.source.url.split('/').pop() : 'synthetic.gguf');
  download(name, buffer, 'application/octet-stream');
});
$('#show-details').addEventListener('click', () => {
  const btn = $('#show-details');
  const open = btn.getAttribute('aria-expanded') !== 'true';
  btn.setAttribute('aria-expanded', String(open));
  $('#model').hidden = !open;
  if (open) $('#model').scrollIntoView({ block: 'start' });
});

// ---- status -------------------------------------------------------------------------------

async function updateMemory() {
  try {
    const m = await engine.call('memory');
    const badge = $('#status-memory');
    if (badge) {
      badge.textContent = `wasm memory ${bytes(m)}`;
      badge.dataset.bytes = String(m);
    }
  } catch {
    // The engine is restarting.
  }
}

function showStatus(env) {
  replace(
    $('#status'),
    el('li', { class: `badge ${env.build === 'mt' ? 'good' : 'warn'}`, id: 'status-engine', dataset: { build: env.build, threads: env.threads } },
      env.build === 'mt' ? `multi-threaded wasm · ${env.threads} threads` : 'single-threaded wasm · 1 thread'),
    el('li', { class: `badge ${env.simd ? 'good' : 'warn'}`, id: 'status-simd', dataset: { simd: env.simd } }, env.simd ? 'SIMD on' : 'SIMD off'),
    el('li', { class: `badge ${env.isolated ? 'good' : 'warn'}`, id: 'status-isolation', dataset: { isolated: env.isolated } },
      env.isolated ? 'cross-origin isolated' : 'not cross-origin isolated'),
    el('li', { class: 'badge', id: 'status-memory', dataset: { bytes: env.memory } }, `wasm memory ${bytes(env.memory)}`),
  );
  $('#isolation-notice').hidden = env.build === 'mt';
  $('#footer-version').textContent = `paritylab ${env.version}`;
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  const env = await engine.ready;
  showStatus(env);
  await paths.init();
  document.body.dataset.engine = 'ready';
  let state = null;
  const hash = location.hash.slice(1);
  if (hash) {
    try {
      state = await engine.call('decode_state', { hash });
    } catch (err) {
      const notice = $('#link-notice');
      notice.hidden = false;
      notice.textContent = `This link could not be opened: ${err.message}. Showing the default comparison instead.`;
    }
  }
  state ??= await engine.call('default_state');
  await act(() => applyState(state));
  document.body.dataset.started = 'true';
}

start().catch((err) => {
  replace($('#status'), el('li', { class: 'badge bad', id: 'status-engine' }, 'engine failed'));
  showError(`The engine could not start: ${err.message}`);
  document.body.dataset.engine = 'failed';
});
