// The page: engine status, model sources (file, default synthetic reproducer) and the inspector.

import { Engine } from './js/engine.js';
import { Inspector } from './js/inspector.js';
import { Runner } from './js/runner.js';
import { el, replace, $ } from './js/dom.js';
import { bytes } from './js/format.js';

const engine = new Engine();
const state = { busy: false, downloadName: 'model.gguf' };

const inspector = new Inspector($('#model'), {
  onSelectTensor: (name) => engine.call('tensor_stats', { name }),
});
const runner = new Runner($('#runner'), engine);

function showError(message) {
  const box = $('#error');
  box.hidden = !message;
  box.textContent = message || '';
}

function setBusy(message) {
  state.busy = Boolean(message);
  const box = $('#busy');
  box.hidden = !message;
  box.textContent = message || '';
  for (const b of document.querySelectorAll('.source-actions button')) b.disabled = state.busy || (b.id === 'download-model' && !inspector.info);
  document.body.classList.toggle('busy', state.busy);
}

/** Run one model-loading step (`request` resolves to {info, origin}): busy state, errors shown,
 * inspector updated. */
async function loadWith(label, downloadName, request) {
  if (state.busy) return;
  showError('');
  setBusy(label);
  try {
    const { info, origin } = await request();
    state.downloadName = downloadName;
    inspector.show(info, origin);
    try {
      const model = await engine.call('model_info');
      runner.show(model.config, null, Boolean(model.tokenizer));
      if (model.tokenizer_error) showError(`The model runs on token ids; its tokenizer cannot be used: ${model.tokenizer_error}`);
    } catch (err) {
      runner.show(null, err.message, false);
    }
  } catch (err) {
    inspector.hide();
    $('#runner').hidden = true;
    showError(err.message);
  } finally {
    setBusy('');
  }
}

async function loadFile(file) {
  if (!file) return;
  const started = performance.now();
  await loadWith(`Reading ${file.name} (${bytes(file.size)})…`, file.name, async () => {
    const buffer = await file.arrayBuffer();
    // The buffer moves to the worker; the page keeps no copy.
    const info = await engine.call('load', { bytes: buffer, name: file.name }, [buffer]);
    const secs = ((performance.now() - started) / 1000).toFixed(2);
    return { info, origin: `${file.name}: read from this computer and parsed in ${secs} s.` };
  });
}

async function loadDefault() {
  await loadWith('Generating the source issue\'s reproducer…', 'source-issue-reproducer.gguf', async () => ({
    info: await engine.call('synthetic', { spec: '' }),
    origin:
      'Synthetic: the source issue\'s reproducer (Qwen3-shaped, dim 32, 2 heads, 2 KV heads, head_dim 16, FFN 64, ' +
      '1 layer, vocab 64, RoPE base 1e6, eps 1e-6, QK norm, small integer weights), generated in this tab from a seed.',
  }));
  // Show it running straight away: the reference path on the tokens.
  if (!$('#runner').hidden && !runner.busy) await runner.run();
}

function showStatus(env) {
  const badges = [
    el('li', { class: `badge ${env.build === 'mt' ? 'good' : 'warn'}`, id: 'status-engine', dataset: { build: env.build, threads: env.threads } },
      env.build === 'mt' ? `multi-threaded wasm · ${env.threads} threads` : 'single-threaded wasm · 1 thread'),
    el('li', { class: `badge ${env.simd ? 'good' : 'warn'}`, id: 'status-simd', dataset: { simd: env.simd } }, env.simd ? 'SIMD on' : 'SIMD off'),
    el('li', { class: `badge ${env.isolated ? 'good' : 'warn'}`, id: 'status-isolation', dataset: { isolated: env.isolated } },
      env.isolated ? 'cross-origin isolated' : 'not cross-origin isolated'),
  ];
  replace($('#status'), badges);
  $('#isolation-notice').hidden = env.build === 'mt';
  $('#footer-version').textContent = `paritylab ${env.version}`;
}

// ---- wiring -------------------------------------------------------------------------------

const input = $('#file-input');
input.addEventListener('change', () => {
  loadFile(input.files[0]);
  input.value = '';
});

const dropzone = $('#dropzone');
dropzone.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    input.click();
  }
});
for (const type of ['dragenter', 'dragover']) {
  document.addEventListener(type, (e) => {
    e.preventDefault();
    dropzone.classList.add('over');
  });
}
for (const type of ['dragleave', 'drop']) {
  document.addEventListener(type, (e) => {
    e.preventDefault();
    if (type === 'drop' || e.target === document.documentElement) dropzone.classList.remove('over');
  });
}
document.addEventListener('drop', (e) => {
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file) loadFile(file);
});

$('#load-default').addEventListener('click', loadDefault);
$('#download-model').addEventListener('click', async () => {
  try {
    const buffer = await engine.call('file_bytes');
    const url = URL.createObjectURL(new Blob([buffer], { type: 'application/octet-stream' }));
    const a = el('a', { href: url, download: state.downloadName });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    showError(err.message);
  }
});

engine.ready.then(
  async (env) => {
    showStatus(env);
    await runner.setPresets();
    document.body.dataset.engine = 'ready';
    return loadDefault();
  },
  (err) => {
    replace($('#status'), el('li', { class: 'badge bad', id: 'status-engine' }, 'engine failed'));
    showError(`The engine could not start: ${err.message}`);
    document.body.dataset.engine = 'failed';
  },
);
