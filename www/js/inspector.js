// The metadata and tensor browser: renders an inspection object (the JSON of
// `paritylab inspect --json`) and per-tensor statistics.

import { el, replace, $ } from './dom.js';
import { thousands, bytes, num, visible } from './format.js';

/** One line for a metadata value summary ({type, elem_type, len, value, truncated}). */
export function valueText(v) {
  const one = (x) => {
    if (typeof x === 'string') return JSON.stringify(visible(x)).slice(1, -1);
    if (x && typeof x === 'object' && !Array.isArray(x)) return `[${x.len}: ${(x.value || []).map(one).join(', ')}${x.truncated ? ', …' : ''}]`;
    return String(x);
  };
  if (v.type === 'array') {
    const items = v.value.map((x) => (typeof x === 'string' ? `"${one(x)}"` : one(x))).join(', ');
    return `[${items}${v.truncated ? ', …' : ''}]`;
  }
  if (v.type === 'string') return `"${one(v.value)}"${v.truncated ? '…' : ''}`;
  return one(v.value);
}

export function typeText(v) {
  return v.type === 'array' ? `${v.elem_type}[${thousands(v.len)}]` : v.type;
}

export class Inspector {
  constructor(root, { onSelectTensor }) {
    this.root = root;
    this.onSelectTensor = onSelectTensor;
    this.info = null;
    this.sort = { key: 'index', dir: 1 };
    this.selected = null;
    $('#tensor-filter', root).addEventListener('input', () => this.renderTensors());
    $('#meta-filter', root).addEventListener('input', () => this.renderMetadata());
    for (const th of root.querySelectorAll('#tensor-table th[data-sort]')) {
      th.tabIndex = 0;
      th.setAttribute('aria-sort', 'none');
      const activate = () => {
        const key = th.dataset.sort;
        this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 };
        this.renderTensors();
      };
      th.addEventListener('click', activate);
      th.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), activate()));
    }
    for (const tab of root.querySelectorAll('[role=tab]')) {
      tab.addEventListener('click', () => this.showTab(tab.id));
    }
  }

  showTab(id) {
    for (const tab of this.root.querySelectorAll('[role=tab]')) {
      const on = tab.id === id;
      tab.setAttribute('aria-selected', String(on));
      $(`#${tab.getAttribute('aria-controls')}`, this.root).hidden = !on;
    }
  }

  show(info, origin) {
    this.info = info;
    this.selected = null;
    this.root.hidden = false;
    const title = info.name || info.architecture || 'GGUF file';
    $('#model-name', this.root).textContent = title;
    $('#model-origin', this.root).textContent = origin;
    const s = info.summary;
    const types = s.types.map((t) => `${t.type} ×${t.tensors}`).join(', ');
    const rows = [
      ['architecture', info.architecture || '(none)'],
      ['format', `GGUF v${info.version}, alignment ${info.alignment}`],
      ['file', `${bytes(info.file_size)} (${thousands(info.file_size)} bytes), data at byte ${thousands(info.data_offset)}`],
      ['tensors', `${thousands(s.tensor_count)}: ${types || 'none'}`],
      ['parameters', thousands(s.parameters)],
      ['metadata', `${thousands(s.metadata_count)} keys`],
    ];
    replace($('#model-summary', this.root), rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    $('#tensor-filter', this.root).value = '';
    $('#meta-filter', this.root).value = '';
    replace($('#tensor-detail', this.root), el('p', { class: 'muted' }, 'Select a tensor to decode it and see its values.'));
    this.renderTensors();
    this.renderMetadata();
  }

  hide() {
    this.info = null;
    this.root.hidden = true;
  }

  renderTensors() {
    if (!this.info) return;
    const filter = $('#tensor-filter', this.root).value.trim().toLowerCase();
    const { key, dir } = this.sort;
    const value = (t) => (key === 'dims' ? t.elements : key === 'index' ? t.index : t[key]);
    const list = this.info.tensors
      .map((t, index) => ({ ...t, index }))
      .filter((t) => !filter || t.name.toLowerCase().includes(filter) || t.type.toLowerCase() === filter)
      .sort((a, b) => {
        const x = value(a);
        const y = value(b);
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
    for (const th of this.root.querySelectorAll('#tensor-table th[data-sort]')) {
      th.setAttribute('aria-sort', th.dataset.sort === key ? (dir > 0 ? 'ascending' : 'descending') : 'none');
    }
    const rows = list.map((t) => {
      const tr = el(
        'tr',
        { tabindex: 0, class: t.name === this.selected ? 'selected' : '', dataset: { name: t.name } },
        el('td', { class: 'num muted' }, t.index),
        el('td', { class: 'mono' }, t.name),
        el('td', { class: t.decodable ? '' : 'warn', title: t.decodable ? '' : 'paritylab cannot decode this type' }, t.type),
        el('td', { class: 'mono' }, `[${t.dims.join(', ')}]`),
        el('td', { class: 'num' }, thousands(t.bytes)),
        el('td', { class: 'num' }, thousands(t.offset)),
      );
      const pick = () => this.select(t.name);
      tr.addEventListener('click', pick);
      tr.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), pick()));
      return tr;
    });
    replace($('#tensor-table tbody', this.root), rows);
    $('#tensor-count', this.root).textContent =
      list.length === this.info.tensors.length ? `${thousands(list.length)} tensors` : `${thousands(list.length)} of ${thousands(this.info.tensors.length)}`;
  }

  renderMetadata() {
    if (!this.info) return;
    const filter = $('#meta-filter', this.root).value.trim().toLowerCase();
    const list = this.info.metadata.filter((m) => !filter || m.key.toLowerCase().includes(filter));
    const rows = list.map((m) => {
      const text = valueText(m);
      const note = m.type === 'array' && m.truncated ? ` (first ${m.value.length} of ${thousands(m.len)})` : m.type === 'string' && m.truncated ? ` (${thousands(m.len)} bytes)` : '';
      return el(
        'tr',
        {},
        el('td', { class: 'mono' }, m.key),
        el('td', { class: 'mono muted' }, typeText(m)),
        el('td', { class: 'mono value' }, el('span', { class: 'clip', title: text.length > 200 ? text.slice(0, 2000) : null }, text), el('span', { class: 'muted' }, note)),
      );
    });
    replace($('#meta-table tbody', this.root), rows);
    $('#meta-count', this.root).textContent = `${thousands(list.length)} of ${thousands(this.info.metadata.length)} keys`;
  }

  async select(name) {
    this.selected = name;
    for (const tr of this.root.querySelectorAll('#tensor-table tbody tr')) {
      tr.classList.toggle('selected', tr.dataset.name === name);
    }
    const detail = $('#tensor-detail', this.root);
    const t = this.info.tensors.find((x) => x.name === name);
    replace(detail, el('h3', { class: 'mono' }, name), el('p', { class: 'muted' }, `${t.type}, dims [${t.dims.join(', ')}], decoding…`));
    try {
      const stats = await this.onSelectTensor(name);
      if (this.selected !== name) return;
      this.renderStats(detail, t, stats);
    } catch (err) {
      if (this.selected !== name) return;
      replace(detail, el('h3', { class: 'mono' }, name), el('p', { class: 'error-inline' }, err.message));
    }
  }

  renderStats(detail, t, s) {
    const rows = [
      ['type', `${t.type} · ${thousands(t.elements)} values · ${bytes(t.bytes)}`],
      ['min / max', `${num(s.min)} / ${num(s.max)}`],
      ['mean ± std', `${num(s.mean)} ± ${num(s.std)}`],
      ['max |x|', num(s.abs_max)],
      ['zeros', thousands(s.zeros)],
      ['NaN / Inf', `${thousands(s.nan)} / ${thousands(s.inf)}`],
    ];
    const canvas = el('canvas', { class: 'histogram', width: 480, height: 140, role: 'img', 'aria-label': `Histogram of ${t.name}'s values from ${num(s.min)} to ${num(s.max)}` });
    replace(
      detail,
      el('h3', { class: 'mono' }, t.name),
      el('dl', { class: 'summary compact' }, rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
      canvas,
      el('div', { class: 'axis' }, el('span', {}, num(s.min)), el('span', {}, num(s.max))),
      el('p', { class: 'muted' }, 'first values of row 0'),
      el('p', { class: 'mono values' }, s.first.map(num).join(', ')),
    );
    drawHistogram(canvas, s.histogram);
  }
}

/** Bars of a histogram on a canvas (counts on a linear scale). */
export function drawHistogram(canvas, counts) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...counts);
  const w = width / counts.length;
  const style = getComputedStyle(canvas);
  ctx.fillStyle = style.getPropertyValue('--bar').trim() || '#3b6ea8';
  counts.forEach((c, i) => {
    const h = c === 0 ? 0 : Math.max(1, (c / max) * (height - 4));
    ctx.fillRect(i * w + 0.5, height - h, Math.max(1, w - 1), h);
  });
}
