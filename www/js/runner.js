// The "Run a path" panel: a prompt (token ids or text) and a path in, the top next tokens per
// position out. As the user types, chips show the exact tokens the path will run (BOS included).

import { el, replace, $ } from './dom.js';
import { num } from './format.js';

/** "1, 5,3" -> [1, 5, 3]; throws a readable error for anything else. */
export function parseTokens(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) throw new Error('Enter at least one token id.');
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new Error(`"${p}" is not a token id (a whole number such as 1, 5 or 3).`);
    const n = Number(p);
    if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new Error(`${p} is too large to be a token id.`);
    return n;
  });
}

function tokenLabel(id, text) {
  return text === null || text === undefined ? String(id) : `${id} ${text}`;
}

/** Call `fn` once input has paused for `ms`. */
function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export class Runner {
  constructor(root, engine) {
    this.root = root;
    this.engine = engine;
    this.busy = false;
    this.hasTokenizer = false;
    this.chipRequest = 0;
    $('#run-form', root).addEventListener('submit', (e) => {
      e.preventDefault();
      this.run();
    });
    $('#run-dump', root).addEventListener('click', () => this.download());
    const refresh = debounce(() => this.updateChips(), 120);
    for (const id of ['#run-tokens', '#run-text', '#run-path']) $(id, root).addEventListener('input', refresh);
    for (const radio of root.querySelectorAll('input[name=prompt-mode]')) {
      radio.addEventListener('change', () => this.setMode(radio.value));
    }
  }

  get mode() {
    return $('#mode-text', this.root).checked ? 'text' : 'ids';
  }

  setMode(mode) {
    $('#mode-text', this.root).checked = mode === 'text';
    $('#mode-ids', this.root).checked = mode !== 'text';
    $('#text-label', this.root).hidden = mode !== 'text';
    $('#tokens-label', this.root).hidden = mode === 'text';
    this.updateChips();
  }

  async setPresets() {
    const presets = await this.engine.call('presets');
    replace($('#preset-list', this.root), presets.map((p) => el('option', { value: p.name }, p.description)));
  }

  /** A new model: runnable (config) or not (reason); `hasTokenizer` enables text prompts. */
  show(config, reason, hasTokenizer) {
    this.root.hidden = false;
    this.hasTokenizer = Boolean(hasTokenizer);
    replace($('#run-table tbody', this.root));
    $('#run-results', this.root).hidden = true;
    $('#run-meta', this.root).textContent = '';
    this.showError('');
    const unavailable = $('#run-unavailable', this.root);
    unavailable.hidden = !reason;
    unavailable.textContent = reason || '';
    for (const c of $('#run-form', this.root).elements) c.disabled = Boolean(reason) || c.id === 'run-dump';
    const textRadio = $('#mode-text', this.root);
    textRadio.disabled = Boolean(reason) || !this.hasTokenizer;
    textRadio.parentElement.title = this.hasTokenizer ? '' : 'This model has no vocabulary: give token ids.';
    if (!this.hasTokenizer && this.mode === 'text') this.setMode('ids');
    this.config = config;
    this.updateChips();
  }

  showError(message) {
    const box = $('#run-error', this.root);
    box.hidden = !message;
    box.textContent = message || '';
  }

  /** The prompt as the engine takes it: an array of ids, or text. Throws on bad ids. */
  prompt() {
    if (this.mode === 'text') return $('#run-text', this.root).value;
    return parseTokens($('#run-tokens', this.root).value);
  }

  path() {
    return $('#run-path', this.root).value.trim() || 'hf';
  }

  /** Show the tokens the path will run as chips (id + piece), BOS marked. */
  async updateChips() {
    const box = $('#run-chips', this.root);
    if (this.root.hidden || !this.config) {
      replace(box);
      return;
    }
    const request = ++this.chipRequest;
    let content;
    try {
      const out = await this.engine.call('input_tokens', { path: this.path(), prompt: this.prompt() });
      if (request !== this.chipRequest) return;
      const bosNote = out.bos_added ? 'this path adds BOS' : 'no BOS added';
      content = [
        ...out.ids.map((id, i) =>
          el(
            'span',
            { class: `chip${out.bos_added && i === 0 ? ' bos' : ''}`, title: out.bos_added && i === 0 ? 'BOS added by the path' : `token ${id}` },
            el('span', { class: 'id' }, id),
            out.pieces ? out.pieces[i] : null,
          ),
        ),
        el('span', { class: 'chip-note' }, `${out.ids.length} token${out.ids.length === 1 ? '' : 's'} · ${bosNote}`),
      ];
    } catch (err) {
      if (request !== this.chipRequest) return;
      content = [el('span', { class: 'chip-note' }, err.message)];
    }
    replace(box, content);
  }

  async run() {
    if (this.busy) return;
    let prompt;
    try {
      prompt = this.prompt();
    } catch (err) {
      this.showError(err.message);
      return;
    }
    const top = Number($('#run-top', this.root).value);
    this.busy = true;
    this.root.classList.add('running');
    $('#run-button', this.root).disabled = true;
    this.showError('');
    const started = performance.now();
    try {
      const summary = await this.engine.call('run', { path: this.path(), prompt, top });
      this.render(summary, performance.now() - started);
      $('#run-dump', this.root).disabled = false;
    } catch (err) {
      this.showError(err.message);
    } finally {
      this.busy = false;
      this.root.classList.remove('running');
      $('#run-button', this.root).disabled = false;
    }
  }

  render(summary, ms) {
    this.last = summary;
    $('#run-meta', this.root).textContent =
      `Path ${summary.path_text} · ${summary.tokens.length} positions · ${ms.toFixed(0)} ms`;
    const rows = summary.positions.map((p) =>
      el(
        'tr',
        { dataset: { position: p.position } },
        el('td', { class: 'num' }, p.position),
        el('td', { class: 'mono' }, tokenLabel(p.token, p.text)),
        el(
          'td',
          { class: 'candidates' },
          p.top.map((c, i) =>
            el(
              'span',
              {
                class: `cand${i === 0 ? ' best' : ''}`,
                title: `logit ${c.logit}, probability ${c.prob}`,
                dataset: { id: c.id, logit: c.logit, prob: c.prob },
              },
              el('span', { class: 'mono' }, tokenLabel(c.id, c.text)),
              el('span', { class: 'muted' }, ` ${num(c.logit)} · ${(c.prob * 100).toFixed(1)}%`),
            ),
          ),
        ),
      ),
    );
    replace($('#run-table tbody', this.root), rows);
    $('#run-results', this.root).hidden = false;
  }

  async download() {
    try {
      const buffer = await this.engine.call('dump');
      const name = `paritylab-${this.last ? this.last.path_text.replace(/[^a-z0-9_.=-]+/gi, '_') : 'run'}.safetensors`;
      const url = URL.createObjectURL(new Blob([buffer], { type: 'application/octet-stream' }));
      const a = el('a', { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      this.showError(err.message);
    }
  }
}
