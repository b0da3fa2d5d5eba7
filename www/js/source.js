// The model source card: a synthetic model (generated from a spec), a dropped or chosen file, or
// a URL. It only collects what the user wants; app.js loads it.

import { $, el, replace } from './dom.js';
import { bytes } from './format.js';

const SYNTH_FIELDS = ['arch', 'vocab', 'hidden', 'heads', 'kv_heads', 'head_dim', 'ffn', 'layers', 'rope_base', 'eps', 'type', 'tied', 'seed'];

export class SourcePanel {
  /** `onLoad(source)` with source `{synth: text}`, `{file: File}` or `{url: text}`;
   * `onDrop(files)` receives files dropped anywhere on the page (a model, or dumps);
   * `onQwen3()`: the Qwen3-0.6B-shaped synthetic model was asked for. */
  constructor(root, { onLoad, onDrop, onQwen3 }) {
    this.root = root;
    this.onLoad = onLoad;
    this.onDrop = onDrop ?? ((files) => files[0] && onLoad({ file: files[0] }));
    for (const tab of root.querySelectorAll('[role=tab]')) tab.addEventListener('click', () => this.showTab(tab.id));
    const form = $('#synth-form', root);
    form.dist_kind.addEventListener('change', () => this.showDist());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.onLoad({ synth: this.synthText() });
    });
    $('#synth-reset', root).addEventListener('click', () => this.onLoad({ synth: '' }));
    $('#synth-qwen3', root).addEventListener('click', () => onQwen3());
    const input = $('#file-input', root);
    input.addEventListener('change', () => {
      if (input.files[0]) this.onLoad({ file: input.files[0] });
      input.value = '';
    });
    $('#dropzone', root).addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        input.click();
      }
    });
    $('#url-form', root).addEventListener('submit', (e) => {
      e.preventDefault();
      this.onLoad({ url: $('#url-input', root).value.trim() });
    });
    // A file dropped anywhere on the page.
    for (const type of ['dragenter', 'dragover']) {
      document.addEventListener(type, (e) => {
        e.preventDefault();
        $('#dropzone', root).classList.add('over');
      });
    }
    for (const type of ['dragleave', 'drop']) {
      document.addEventListener(type, (e) => {
        e.preventDefault();
        if (type === 'drop' || e.target === document.documentElement) $('#dropzone', root).classList.remove('over');
      });
    }
    // On the model's drop zone a file is the model, whatever it is (a wrong one gets the GGUF
    // reader's error); anywhere else the page decides (a GGUF is a model, anything else a dump).
    $('#dropzone', root).addEventListener('drop', (e) => {
      e.preventDefault();
      e.stopPropagation();
      $('#dropzone', root).classList.remove('over');
      const file = e.dataTransfer && e.dataTransfer.files[0];
      if (file) this.onLoad({ file });
    });
    document.addEventListener('drop', (e) => {
      const files = e.dataTransfer ? [...e.dataTransfer.files] : [];
      if (files.length) this.onDrop(files);
    });
  }

  showTab(id) {
    for (const tab of this.root.querySelectorAll('[role=tab]')) {
      const on = tab.id === id;
      tab.setAttribute('aria-selected', String(on));
      $(`#${tab.getAttribute('aria-controls')}`, this.root).hidden = !on;
    }
  }

  showDist() {
    const normal = $('#synth-form', this.root).dist_kind.value === 'normal';
    for (const l of this.root.querySelectorAll('.dist-int')) l.hidden = normal;
    for (const l of this.root.querySelectorAll('.dist-normal')) l.hidden = !normal;
  }

  /** Fill the form from a parsed synthetic spec (the `spec` of the engine's `synth_spec`). */
  fillSynth(spec) {
    const form = $('#synth-form', this.root);
    // Floats arrive as the exact doubles of f32 values (1e-6 as 9.99999997e-7): show them short.
    const short = (v) => (typeof v === 'number' && !Number.isInteger(v) ? String(Number(v.toPrecision(7))) : String(v));
    for (const f of SYNTH_FIELDS) form[f].value = short(spec[f]);
    form.dist_kind.value = spec.dist.kind;
    if (spec.dist.kind === 'int') {
      form.lo.value = spec.dist.lo;
      form.hi.value = spec.dist.hi;
    } else {
      form.scale.value = short(spec.dist.scale);
    }
    this.showDist();
  }

  /** The form as a spec text (`source-issue,field=value,...`). */
  synthText() {
    const form = $('#synth-form', this.root);
    const parts = SYNTH_FIELDS.map((f) => `${f}=${form[f].value.trim()}`);
    const dist = form.dist_kind.value === 'normal' ? `normal:${form.scale.value.trim()}` : `int:${form.lo.value.trim()}:${form.hi.value.trim()}`;
    return ['source-issue', ...parts, `dist=${dist}`].join(',');
  }

  /** Say which model is loaded. */
  showModel({ title, detail, sha256 }) {
    replace(
      $('#model-line', this.root),
      el('strong', {}, title),
      el('span', { class: 'muted' }, ` · ${detail}`),
      sha256 ? el('span', { class: 'muted mono', title: `SHA-256 ${sha256}` }, ` · sha256 ${sha256.slice(0, 12)}…`) : null,
    );
  }

  /** Ask for a local file by its fingerprint (a shared link made on someone's own file). */
  askForFile({ name, size, sha256 }) {
    this.showTab('src-tab-file');
    replace(
      $('#model-line', this.root),
      el('strong', {}, 'Drop the file this link was made with: '),
      el('span', { class: 'mono' }, name),
      el('span', { class: 'muted' }, ` (${bytes(size)}, sha256 ${sha256.slice(0, 12)}…)`),
    );
  }
}
