// The "Run a path" panel: token ids and a path in, the top next tokens per position out.

import { el, replace, $ } from './dom.js';
import { num, visible } from './format.js';

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
  return text === null || text === undefined ? String(id) : `${id} ${JSON.stringify(visible(text))}`;
}

export class Runner {
  constructor(root, engine) {
    this.root = root;
    this.engine = engine;
    this.busy = false;
    $('#run-form', root).addEventListener('submit', (e) => {
      e.preventDefault();
      this.run();
    });
    $('#run-dump', root).addEventListener('click', () => this.download());
  }

  async setPresets() {
    const presets = await this.engine.call('presets');
    replace($('#preset-list', this.root), presets.map((p) => el('option', { value: p.name }, p.description)));
  }

  /** A new model: runnable (config) or not (reason). */
  show(config, reason) {
    this.root.hidden = false;
    replace($('#run-table tbody', this.root));
    $('#run-results', this.root).hidden = true;
    $('#run-meta', this.root).textContent = '';
    $('#run-dump', this.root).disabled = true;
    this.showError('');
    const unavailable = $('#run-unavailable', this.root);
    unavailable.hidden = !reason;
    unavailable.textContent = reason || '';
    for (const c of $('#run-form', this.root).elements) c.disabled = Boolean(reason) || (c.id === 'run-dump');
    this.config = config;
  }

  showError(message) {
    const box = $('#run-error', this.root);
    box.hidden = !message;
    box.textContent = message || '';
  }

  async run() {
    if (this.busy) return;
    let tokens;
    try {
      tokens = parseTokens($('#run-tokens', this.root).value);
    } catch (err) {
      this.showError(err.message);
      return;
    }
    const path = $('#run-path', this.root).value.trim() || 'hf';
    const top = Number($('#run-top', this.root).value);
    this.busy = true;
    this.root.classList.add('running');
    $('#run-button', this.root).disabled = true;
    this.showError('');
    const started = performance.now();
    try {
      const summary = await this.engine.call('run', { path, tokens, top });
      const ms = performance.now() - started;
      this.render(summary, ms);
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
