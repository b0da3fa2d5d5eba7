// Dumps dropped next to the model: other engines' activations (safetensors with our, HF's or
// llama.cpp's names; .npy files; .npz; a llama.cpp eval-callback log), to compare with a built-in
// path stage by stage. The engine keeps the files; nothing leaves this tab. A dump is picked as
// path A or B, which the paths editor then shows as `dump:<name>`.

import { $, el, replace } from './dom.js';
import { bytes } from './format.js';

const CONTAINER = {
  safetensors: 'safetensors',
  npy: '.npy files',
  npz: '.npz',
  llama_cpp_log: 'llama.cpp eval-callback log',
};

/** Files that look like a model rather than a dump (GGUF magic or extension). */
export async function isGguf(file) {
  if (/\.gguf$/i.test(file.name)) return true;
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  return head.length === 4 && String.fromCharCode(...head) === 'GGUF';
}

export class DumpsPanel {
  /** `onUse(side, text, preview)` when a dump is picked for a side; `onChange()` when the list or options change. */
  constructor(root, engine, { onUse, onChange }) {
    this.root = root;
    this.engine = engine;
    this.onUse = onUse;
    this.onChange = onChange;
    this.dumps = new Map(); // name -> {preview, prefix, files: [File]}
    this.mapText = '';
    this.mapName = '';
    const files = $('#dump-files', root);
    files.addEventListener('change', () => {
      this.addFiles([...files.files]);
      files.value = '';
    });
    const folder = $('#dump-folder', root);
    folder.addEventListener('change', () => {
      this.addFiles([...folder.files], { folder: true });
      folder.value = '';
    });
    const zone = $('#dump-dropzone', root);
    zone.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        files.click();
      }
    });
    zone.addEventListener('drop', (e) => {
      // Dumps dropped here are dumps, whatever they look like.
      e.preventDefault();
      e.stopPropagation();
      zone.classList.remove('over');
      if (e.dataTransfer?.files?.length) this.addFiles([...e.dataTransfer.files]);
    });
    zone.addEventListener('dragover', (e) => {
      e.preventDefault();
      zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    const map = $('#dump-map', root);
    map.addEventListener('change', async () => {
      const f = map.files[0];
      map.value = '';
      if (!f) return;
      this.mapText = await f.text();
      this.mapName = f.name;
      this.renderOptions();
      this.onChange();
    });
    $('#dump-map-clear', root).addEventListener('click', () => {
      this.mapText = '';
      this.mapName = '';
      this.renderOptions();
      this.onChange();
    });
    for (const id of ['#dump-naming', '#dump-qk']) $(id, root).addEventListener('change', () => this.onChange());
    this.render();
  }

  /** Add files: one dump per file, or one dump of several `.npy` files (and a metadata.json). */
  async addFiles(list, { folder = false } = {}) {
    if (!list.length) return;
    const npy = list.filter((f) => /\.npy$/i.test(f.name) || /(^|\/)metadata\.json$/i.test(f.name));
    const groups = folder || (npy.length === list.length && npy.length > 1)
      ? [{ name: folderName(list), files: list.filter((f) => npy.includes(f)) }]
      : list.map((f) => ({ name: f.name, files: [f] }));
    this.error('');
    for (const g of groups) {
      if (!g.files.length) {
        this.error(`${g.name}: no .npy files in it.`);
        continue;
      }
      try {
        const payload = await Promise.all(g.files.map(async (f) => ({ name: f.name, bytes: await f.arrayBuffer() })));
        const preview = await this.engine.call('add_dump', { name: g.name, files: payload }, payload.map((p) => p.bytes));
        const size = g.files.reduce((s, f) => s + f.size, 0);
        this.dumps.set(g.name, { preview, size, prefix: preview.prefixes[0] ?? '', files: g.files });
      } catch (err) {
        this.error(`${g.name}: ${err.message}`);
      }
    }
    this.render();
    this.onChange();
  }

  /** Give the engine the files again (after it restarted). */
  async restore() {
    for (const [name, d] of this.dumps) {
      const payload = await Promise.all(d.files.map(async (f) => ({ name: f.name, bytes: await f.arrayBuffer() })));
      await this.engine.call('add_dump', { name, files: payload }, payload.map((p) => p.bytes));
    }
  }

  /** The side text for a dump (`dump:name`, with `#prefix` for a file holding several). */
  text(name) {
    const d = this.dumps.get(name);
    return d && d.prefix ? `dump:${name}#${d.prefix}` : `dump:${name}`;
  }

  /** The name of the kept dump a side text (`dump:name#prefix`) refers to, or null. */
  nameOf(text) {
    if (!text.startsWith('dump:')) return null;
    const rest = text.slice(5);
    const hash = rest.lastIndexOf('#');
    const name = this.dumps.has(rest) || hash < 0 ? rest : rest.slice(0, hash);
    return this.dumps.has(name) ? name : null;
  }

  /** The kept dump a side text refers to, or null. */
  lookup(text) {
    const name = this.nameOf(text);
    return name === null ? null : this.dumps.get(name);
  }

  /** How the engine should read the dumps (`compare`'s `dump` option). */
  options() {
    const naming = $('#dump-naming', this.root).value;
    const qk = $('#dump-qk', this.root).value;
    return {
      map: this.mapText || undefined,
      naming: naming || undefined,
      qk_row_order: qk || undefined,
    };
  }

  error(message) {
    const box = $('#dump-error', this.root);
    box.hidden = !message;
    box.textContent = message;
  }

  renderOptions() {
    const line = $('#dump-map-name', this.root);
    line.textContent = this.mapName ? `mapping: ${this.mapName}` : 'no mapping file';
    $('#dump-map-clear', this.root).hidden = !this.mapName;
  }

  render() {
    this.renderOptions();
    const list = $('#dump-list', this.root);
    if (!this.dumps.size) {
      replace(list, el('li', { class: 'muted' }, 'No dump yet.'));
      return;
    }
    replace(list, [...this.dumps].map(([name, d]) => {
      const p = d.preview;
      const facts = [
        CONTAINER[p.container] ?? p.container,
        p.naming ? `${p.naming} names` : 'names not recognised',
        `${p.tensors} tensor${p.tensors === 1 ? '' : 's'}`,
        bytes(d.size),
        p.token_ids ? `tokens ${p.token_ids}` : 'no token ids (the prompt gives them)',
      ];
      if (p.producer) facts.push(`by ${p.producer}`);
      let prefix = null;
      if (p.prefixes.length > 1) {
        prefix = el('select', { 'aria-label': `Which dump of ${name}`, class: 'dump-prefix' },
          p.prefixes.map((x) => el('option', { value: x }, x.replace(/\.$/, ''))));
        prefix.value = d.prefix;
        prefix.addEventListener('change', () => {
          d.prefix = prefix.value;
          this.onChange();
        });
      }
      return el('li', { class: 'dump-item', dataset: { name } },
        el('div', {}, el('strong', { class: 'mono' }, name), prefix ? el('span', {}, ' · dump ', prefix) : null),
        el('div', { class: 'muted small' }, facts.join(' · ')),
        el('div', { class: 'form-actions' },
          el('button', { type: 'button', onclick: () => this.onUse('a', this.text(name), p) }, 'Use as A'),
          el('button', { type: 'button', onclick: () => this.onUse('b', this.text(name), p) }, 'Use as B'),
          el('button', { type: 'button', class: 'quiet', onclick: () => this.remove(name) }, 'Remove')));
    }));
  }

  async remove(name) {
    this.dumps.delete(name);
    try {
      await this.engine.call('remove_dump', { name });
    } catch {
      // The engine is restarting; restore() will not bring it back.
    }
    this.render();
    this.onChange(name);
  }
}

/** A name for a set of .npy files: their folder, else the first file's stem. */
function folderName(files) {
  const rel = files[0]?.webkitRelativePath || '';
  if (rel.includes('/')) return rel.split('/')[0];
  return `${(files[0]?.name || 'dump').replace(/\.npy$/i, '')} (+${files.length - 1} .npy)`;
}
