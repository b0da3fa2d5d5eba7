// The playground: pick a model, a prompt and two paths, compare them, read where and why they
// part. All compute runs in the engine's worker; the page only arranges it. The whole state lives
// in the URL hash (encoded by the engine), so a link reproduces a comparison.

import { CancelledError, CrashedError, Engine } from './js/engine.js';
import { Inspector } from './js/inspector.js';
import { SourcePanel } from './js/source.js';
import { PromptEditor } from './js/prompt.js';
import { PathsEditor } from './js/paths.js';
import { Results } from './js/results.js';
import { DumpsPanel, isGguf } from './js/dumps.js';
import { fetchModel } from './js/fetcher.js';
import { $, el, replace } from './js/dom.js';
import { bytes, num } from './js/format.js';
import { StatsTable } from './js/stats.js';
import { CAPTURE_KEEPS } from './js/results.js';

/** Above this estimate of the traces a full capture would keep, capture `stats` is chosen (unless
 * the user chose a level). */
const FULL_CAPTURE_LIMIT = 256 * 2 ** 20;
/** The synthetic model of Qwen3-0.6B's shape (a preset of the generator). */
const QWEN3_SPEC = 'qwen3-0.6b';

const engine = new Engine(undefined, { onCrash: (reason) => engineCrashed(reason) });
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
  captureChosen: false, // the user (or a link) chose the capture level: no automatic choice
  loadSeconds: null, // how long the model took to load (generation + parse for a synthetic one)
};

// ---- panels ------------------------------------------------------------------------------

const inspector = new Inspector($('#model'), { onSelectTensor: (name) => engine.call('tensor_stats', { name }) });
const source = new SourcePanel($('#source'), {
  onLoad: (src) => act(() => loadSource(src, { after: 'compare' })),
  // Qwen3-0.6B's shape: big, so it is run (timed, with per-stage statistics) rather than compared.
  onQwen3: () => act(async () => {
    setCapture('stats', { chosen: true, note: 'Capture is set to stats for the Qwen3-0.6B-shaped model: per-stage summaries keep a run of a model this size fast and small. Choose full to keep every value.' });
    await loadSource({ synth: QWEN3_SPEC }, { after: 'run' });
    if (app.runnable) await run();
  }),
  // A GGUF dropped anywhere is the model; anything else is a dump.
  onDrop: async (files) => {
    if (files.length === 1 && (await isGguf(files[0]))) act(() => loadSource({ file: files[0] }, { after: 'compare' }));
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
  $('#capture').disabled = anyDump;
  $('#capture').closest('label').title = anyDump ? 'a dump is compared value by value: capture full' : '';
  $('#run-button').disabled = app.busy || !app.runnable || paths.isDump('a');
  $('#run-button').title = paths.isDump('a') ? 'path A is a dump: a dump cannot be run' : 'Run path A alone, timed: the prompt in one batch, then greedy decoding';
  captureChanged();
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
  onWantFull: () => act(async () => {
    setCapture('full', { chosen: true });
    app.view = {};
    await compare();
  }),
});
const runStats = new StatsTable($('#run-stats'), { tokenLabel: (id) => tokenLabel(id) });

function tokenLabel(id) {
  const text = app.pieces.get(id);
  return text ? `${id} ${text}` : String(id);
}

// ---- capture level -------------------------------------------------------------------------

/** The capture level to run with: `full` with a dump (compared value by value). */
function captureLevel() {
  return paths.isDump('a') || paths.isDump('b') ? 'full' : $('#capture').value;
}

/** Set the capture control; `chosen`: it is the user's choice from now on; `note`: why. */
function setCapture(level, { chosen = false, note = null } = {}) {
  $('#capture').value = level;
  if (chosen) app.captureChosen = true;
  captureNote(note);
  captureChanged();
}

/** Show (or hide) the note under the options; a note about an automatic choice offers the way back. */
function captureNote(text, { offerFull = false } = {}) {
  const box = $('#capture-note');
  box.hidden = !text;
  if (!text) return replace(box);
  replace(box, text, offerFull
    ? el('button', { type: 'button', onclick: () => setCapture('full', { chosen: true }) }, 'Capture full anyway')
    : null);
}

/** Isolation feeds B with A's values: it needs capture full. */
function captureChanged() {
  const full = captureLevel() === 'full';
  const anyDump = paths.isDump('a') || paths.isDump('b');
  $('#isolation').disabled = anyDump || !full;
  if (!anyDump) $('#isolation').closest('label').title = full ? '' : 'isolation feeds B with A’s values, which capture full keeps';
}

$('#capture').addEventListener('change', () => {
  app.captureChosen = true;
  captureNote(null);
  captureChanged();
  updateHash();
});

/**
 * Before a run or a comparison: unless the user chose a level, pick `stats` when a full capture
 * would keep more than FULL_CAPTURE_LIMIT (estimated from the model's dimensions and the prompt),
 * else `full`, and say so. Returns the level to use.
 */
async function chooseCapture(kind) {
  if (paths.isDump('a') || paths.isDump('b')) return 'full';
  const [a, b] = paths.texts();
  let est;
  try {
    est = await engine.call('trace_estimate', {
      a, b: kind === 'compare' ? b : null, prompt: prompt.engineValue(), decode: kind === 'run' ? decodeCount() : 0,
    });
  } catch {
    return captureLevel(); // a bad prompt or path: the run itself says what is wrong
  }
  const what = kind === 'compare' ? 'this comparison (both paths and their noise measurements)' : 'this run';
  if (!app.captureChosen) {
    const pick = est.full > FULL_CAPTURE_LIMIT ? 'stats' : 'full';
    $('#capture').value = pick;
    captureChanged();
    captureNote(pick === 'stats'
      ? `Capture is set to stats automatically: a full capture of ${what} would keep about ${bytes(est.full)} of values (over ${bytes(FULL_CAPTURE_LIMIT)}); stats keeps per-stage summaries and the logits, about ${bytes(est.stats)}. `
      : null, { offerFull: pick === 'stats' });
    $('#capture-note').dataset.estimate = String(est.full);
    return pick;
  }
  if (captureLevel() === 'full' && est.full > FULL_CAPTURE_LIMIT) {
    captureNote(`A full capture of ${what} keeps about ${bytes(est.full)} of values in this tab; capture stats would keep about ${bytes(est.stats)}.`);
  }
  return captureLevel();
}

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
  $('#run-button').disabled = busy || !app.runnable || paths.isDump('a');
}

/**
 * The engine crashed and a fresh one was started (see Engine): say so, and put the model back
 * (the settings are in the page and its address). While an action runs, it sees its call fail
 * and does this in its own error handling.
 */
function engineCrashed(reason) {
  const notice = $('#crash-notice');
  notice.hidden = false;
  notice.textContent = `The engine crashed (${reason}) and was restarted, with your settings kept. ` +
    'If it happened during a run, the run likely needed more memory than the browser gave: try a lower capture level, a shorter prompt or a smaller model.';
  document.body.dataset.crashes = String(engine.crashes);
  if (!app.busy) act(reload);
}

/** Run one user action: busy state, errors shown, cancellation understood. */
async function act(fn) {
  if (app.busy) return;
  setBusy(true);
  showError('');
  try {
    await fn();
  } catch (err) {
    if (err instanceof CrashedError) {
      showError(err.message);
      await reload();
    } else if (err instanceof CancelledError || err.name === 'AbortError') {
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
    await loadSource(src, { quiet: true });
    await dumps.restore();
  } catch (err) {
    showError(`The model could not be reloaded into the restarted engine: ${err.message}`);
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
  $('#run-results').hidden = true;
  $('#show-details').disabled = true;
  $('#download-model').disabled = true;
  $('#compare-button').disabled = true;
  prompt.setModel(false, false);
  source.showModel({ title: 'No model loaded', detail: 'generate one, drop a file, or fetch a URL' });
}

/** Hand bytes to the engine; a failure leaves it without a model. */
async function engineLoad(type, payload, transfer = [], onProgress = null) {
  try {
    return await engine.call(type, payload, transfer, onProgress);
  } catch (err) {
    // A file refused before it was read leaves the engine's model as it was.
    if (!(err instanceof CancelledError) && !err.kept) clearModel();
    throw err;
  }
}

/**
 * What the page will do once a model is loaded (`compare`, `run` or nothing), for the engine's
 * check that the model and that work fit in its memory before anything is read. The capture level
 * is the lowest the page would choose on its own (the run checks again with the exact one).
 */
function loadIntent(after) {
  if (!after) return {};
  const [a, b] = paths.texts();
  let promptValue;
  try {
    promptValue = prompt.engineValue();
  } catch {
    promptValue = undefined; // the prompt's own error comes with the run
  }
  const capture = app.captureChosen ? captureLevel() : 'stats';
  if (after === 'compare') return { a, b, prompt: promptValue, capture };
  let decode = 0;
  try {
    decode = decodeCount();
  } catch {
    decode = 0;
  }
  return { a, prompt: promptValue, capture, decode };
}

/** Read a file (or a downloaded Blob) into the engine, after its header and memory check. */
async function loadBlob(blob, name, request) {
  const label = `Reading ${name} (${bytes(blob.size)})`;
  showProgress(`${label}…`, { value: 0 });
  const loaded = await engineLoad('load_file', { file: blob, name, request }, [], ({ read, total }) =>
    showProgress(`${label}…`, { value: read / total, detail: `${bytes(read)} of ${bytes(total)}` }));
  return loaded.info;
}

/**
 * Load a model from `src` ({synth: text} | {file: File} | {url: text}); returns the inspection.
 * `after` ('compare', 'run' or null) is what the page does next: the engine checks that the model
 * and that work fit before reading anything, and 'compare' starts the comparison.
 */
async function loadSource(src, { after = null, quiet = false } = {}) {
  const request = loadIntent(after);
  let info;
  let title;
  let detail;
  let started = performance.now();
  app.loadSeconds = null;
  if (src.synth !== undefined) {
    const parsed = await engine.call('synth_spec', { text: src.synth });
    source.fillSynth(parsed.spec);
    showProgress(`Generating the synthetic model (${bytes(parsed.bytes)})…`);
    started = performance.now();
    info = (await engineLoad('synthetic', { spec: parsed.text, request })).info;
    app.loadSeconds = (performance.now() - started) / 1000;
    app.source = { synth: parsed.text };
    app.fileHandle = null;
    const s = parsed.spec;
    const named = async (text) => parsed.text === (await engine.call('synth_spec', { text })).text;
    if (await named('')) title = "Source issue's reproducer (synthetic)";
    else if (await named(QWEN3_SPEC)) title = 'Qwen3-0.6B shape (synthetic)';
    else title = `Synthetic ${s.arch}`;
    detail = `${s.arch}, dim ${s.hidden}, ${s.heads} heads / ${s.kv_heads} KV × ${s.head_dim}, FFN ${s.ffn}, ${s.layers} layer${s.layers > 1 ? 's' : ''}, vocab ${s.vocab}, ${s.type}`;
    source.showTab('src-tab-synth');
  } else if (src.file) {
    const file = src.file;
    info = await loadBlob(file, file.name, request);
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
      const blob = await fetchModel(url, {
        signal: app.download.signal,
        onProgress: ({ received, total, speed }) =>
          showProgress(`Downloading ${new URL(url).pathname.split('/').pop() || url}`, {
            value: total ? received / total : null,
            detail: `${bytes(received)}${total ? ` of ${bytes(total)}` : ''} · ${bytes(speed)}/s`,
          }),
      });
      app.download = null;
      info = await loadBlob(blob, url.split('/').pop() || 'model.gguf', request);
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
  app.loadSeconds ??= (performance.now() - started) / 1000;
  const secs = app.loadSeconds.toFixed(2);
  inspector.show(info, `${title}: ${detail}; loaded in ${secs} s${src.synth !== undefined ? ' (generated and parsed)' : ''}.`);
  $('#model').hidden = $('#show-details').getAttribute('aria-expanded') !== 'true';
  source.showModel({ title, detail: `${info.architecture || 'no architecture'} · ${detail} · loaded in ${secs} s`, sha256: app.source.file?.sha256 });
  // Results of the previous model are not this model's.
  $('#run-results').hidden = true;
  $('#results').hidden = true;
  $('#show-details').disabled = false;
  $('#download-model').disabled = false;
  await describeModel(quiet);
  if (after === 'compare' && app.runnable) await compare();
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
  $('#run-button').disabled = !app.runnable || paths.isDump('a');
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
  const capture = captureLevel();
  return {
    noise_multiple: multiple,
    atol,
    rtol,
    isolation: anyDump || capture !== 'full' ? 'off' : $('#isolation').value,
    explain: anyDump ? false : $('#explain').checked,
    capture,
  };
}

async function compare() {
  await paths.commit();
  const promptValue = prompt.engineValue();
  const [a, b] = paths.texts();
  await chooseCapture('compare');
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
  if (report.capture !== 'full') {
    for (const side of ['a', 'b']) {
      $(`#export-dump-${side}`).disabled = true;
      $(`#export-dump-${side}`).title = `capture ${report.capture} keeps ${CAPTURE_KEEPS[report.capture]}: a dump needs capture full`;
    }
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

// ---- running path A ------------------------------------------------------------------------

function decodeCount() {
  const v = $('#decode').value.trim();
  const n = v === '' ? 0 : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 4096) throw new Error('Decode takes a whole number of tokens from 0 to 4096.');
  return n;
}

/** Run path A alone on the prompt (then decode greedily), timed in the engine's worker. */
async function run() {
  await paths.commit();
  if (paths.isDump('a')) throw new Error('Path A is a dump: a dump cannot be run. Choose a built-in path for A.');
  const decode = decodeCount();
  const promptValue = prompt.engineValue();
  const [a] = paths.texts();
  const capture = await chooseCapture('run');
  showProgress(`Running path A (capture ${capture})${decode ? `, then decoding ${decode} tokens` : ''}…`);
  const result = await engine.call('run', { path: a, prompt: promptValue, top: 5, options: { capture, decode } });
  const ids = new Set([...result.tokens, ...result.positions.flatMap((p) => p.top.map((c) => c.id))]);
  const list = [...ids];
  const pieces = await engine.call('pieces', { ids: list });
  if (pieces) list.forEach((id, i) => app.pieces.set(id, pieces[i]));
  const text = result.generated.length ? await engine.call('decode', { ids: result.generated }).catch(() => null) : null;
  showRun(result, text);
}

function showRun(r, text) {
  const box = $('#run-results');
  box.hidden = false;
  box.dataset.capture = r.capture;
  const t = r.timing;
  const n = r.prompt_tokens;
  const d = r.generated.length;
  const perToken = (ms, count) => (count ? ms / count : null);
  const row = (key, label, value, data) => [el('dt', {}, label), el('dd', { dataset: { key, ...data } }, value)];
  const ms = (x) => `${num(Number(x.toFixed(x < 10 ? 2 : 1)))} ms`;
  replace($('#run-timing'),
    row('path', 'path A', el('code', {}, r.path_text)),
    row('capture', 'capture', `${r.capture}: ${CAPTURE_KEEPS[r.capture]}`),
    app.loadSeconds !== null
      ? row('load', app.source?.synth !== undefined ? 'model load (generation + parse)' : 'model load', `${app.loadSeconds.toFixed(2)} s`, { value: String(app.loadSeconds) })
      : null,
    row('prompt', 'prompt', `${n} token${n === 1 ? '' : 's'} in ${ms(t.prompt_ms)}: ${ms(perToken(t.prompt_ms, n))} per token`, { ms: String(t.prompt_ms), perToken: String(perToken(t.prompt_ms, n)) }),
    d ? row('decode', 'decode', `${d} token${d === 1 ? '' : 's'} in ${ms(t.decode_ms)}: ${ms(perToken(t.decode_ms, d))} per token (${(1000 * d / t.decode_ms).toFixed(2)} tokens/s)`, { ms: String(t.decode_ms), perToken: String(perToken(t.decode_ms, d)) }) : null,
    row('memory', 'peak wasm memory', bytes(t.memory_bytes), { bytes: String(t.memory_bytes) }),
    row('threads', 'engine', $('#status-engine')?.textContent ?? ''),
  );
  const last = r.positions[n - 1];
  const chips = (top) => el('div', { class: 'candidates' }, top.map((c) => el('span', { class: 'cand', title: `logit ${c.logit}, p ${c.prob}` },
    el('span', { class: 'mono' }, tokenLabel(c.id)), el('span', { class: 'muted' }, ` ${(c.prob * 100).toFixed(1)}%`))));
  replace($('#run-output'),
    el('p', { class: 'small muted' }, `After the prompt (position ${n - 1}, token ${tokenLabel(r.tokens[n - 1])}), the most likely next tokens:`),
    last?.top.length ? chips(last.top) : el('p', { class: 'muted' }, 'No logits were kept for this position.'),
    d ? el('p', { class: 'small muted' }, `Decoded greedily (${d} tokens):`) : null,
    d ? el('div', { class: 'generated', id: 'run-generated' }, text ?? r.generated.map((id) => tokenLabel(id)).join(' · ')) : null,
  );
  const note = $('#run-capture-note');
  $('#run-stats').hidden = r.capture !== 'stats';
  if (r.capture === 'stats') {
    note.textContent = `Capture stats: per-stage statistics of every position (the prompt's and the decoded ones). Values were not captured: set capture to full and run again to keep them (and download them as a dump).`;
    runStats.showRun(r);
  } else if (r.capture === 'off') {
    note.textContent = 'Capture off: only the logits were kept. Choose stats for per-stage statistics, or full for every value.';
  } else {
    replace(note, `Capture full: every value of every stage was kept. `,
      el('button', { type: 'button', id: 'run-dump', onclick: () => act(async () => download('paritylab-run.safetensors', await engine.call('dump'), 'application/octet-stream')) }, 'Download the dump'));
  }
  box.scrollIntoView({ block: 'start' });
}

$('#run-button').addEventListener('click', () => act(run));
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
    capture: opts.capture,
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

/** Put a decoded state into the controls and load its model (then compare). A link's capture
 * level is kept as given (`fromLink`); the default state lets the page choose. */
async function applyState(state, { fromLink = false } = {}) {
  $('#tol-multiple').value = state.tolerances.noise_multiple;
  $('#tol-atol').value = state.tolerances.atol ?? '';
  $('#tol-rtol').value = state.tolerances.rtol ?? '';
  $('#isolation').value = state.isolation;
  $('#explain').checked = state.explain;
  setCapture(state.capture ?? 'full', { chosen: fromLink });
  await paths.set(state.a, state.b);
  prompt.set(state.prompt);
  app.view = { position: state.view.position ?? null, stage: state.view.stage ?? null };
  const m = state.model;
  if (m.synth !== undefined) return loadSource({ synth: m.synth }, { after: 'compare' });
  if (m.url !== undefined) return loadSource({ url: m.url }, { after: 'compare' });
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
    el('li', { class: `badge ${env.simd ? 'good' : 'warn'}`, id: 'status-simd', dataset: { simd: env.simd, flavour: env.flavour } },
      env.simd ? (env.relaxed ? 'SIMD on · relaxed' : 'SIMD on') : 'SIMD off'),
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
  const fromLink = state !== null;
  state ??= await engine.call('default_state');
  await act(() => applyState(state, { fromLink }));
  document.body.dataset.started = 'true';
}

start().catch((err) => {
  replace($('#status'), el('li', { class: 'badge bad', id: 'status-engine' }, 'engine failed'));
  showError(`The engine could not start: ${err.message}`);
  document.body.dataset.engine = 'failed';
});
