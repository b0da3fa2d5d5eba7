// The prompt card: token ids or text, and under it the tokens each path will really run (its BOS
// handling included), as chips (id + piece) that update as the user types.

import { $, el, replace } from './dom.js';

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

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export class PromptEditor {
  /** `paths()` returns the two path texts; `onChange()` is called when the prompt changes;
   * `dumpTokens(text)` gives a dump side's recorded token ids (or null). */
  constructor(root, engine, { paths, onChange, dumpTokens = () => null }) {
    this.root = root;
    this.engine = engine;
    this.paths = paths;
    this.dumpTokens = dumpTokens;
    this.onChange = onChange;
    this.hasTokenizer = false;
    this.ready = false;
    this.request = 0;
    const refresh = debounce(() => {
      this.updateChips();
      this.onChange();
    }, 120);
    $('#prompt-ids', root).addEventListener('input', refresh);
    $('#prompt-text', root).addEventListener('input', refresh);
    for (const radio of root.querySelectorAll('input[name=prompt-mode]')) {
      radio.addEventListener('change', () => {
        this.setMode(radio.value);
        this.onChange();
      });
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

  /** A model was loaded (`ready`: it can run) with or without a tokenizer. */
  setModel(ready, hasTokenizer) {
    this.ready = ready;
    this.hasTokenizer = hasTokenizer;
    const text = $('#mode-text', this.root);
    text.disabled = !hasTokenizer;
    text.parentElement.title = hasTokenizer ? '' : 'This model has no vocabulary: give token ids.';
    if (!hasTokenizer && this.mode === 'text') this.setMode('ids');
    this.updateChips();
  }

  /** The prompt as the engine and the share state take it: `{ids: [...]}` or `{text}`. Throws on bad ids. */
  value() {
    if (this.mode === 'text') return { text: $('#prompt-text', this.root).value };
    return { ids: parseTokens($('#prompt-ids', this.root).value) };
  }

  set(prompt) {
    if (prompt.text !== undefined) {
      $('#prompt-text', this.root).value = prompt.text;
      this.setMode('text');
    } else {
      $('#prompt-ids', this.root).value = prompt.ids.join(',');
      this.setMode('ids');
    }
  }

  /** The engine's form of the prompt: an array of ids, or the text. */
  engineValue() {
    const v = this.value();
    return v.text !== undefined ? v.text : v.ids;
  }

  async updateChips() {
    const request = ++this.request;
    const boxes = [$('#chips-a', this.root), $('#chips-b', this.root)];
    if (!this.ready) {
      boxes.forEach((b) => replace(b));
      return;
    }
    let prompt;
    try {
      prompt = this.engineValue();
    } catch (err) {
      replace(boxes[0], el('span', { class: 'chip-note error-inline' }, err.message));
      replace(boxes[1]);
      return;
    }
    const [a, b] = this.paths();
    const side = async (path) => {
      if (!path.startsWith('dump:')) return this.engine.call('input_tokens', { path, prompt });
      const ids = this.dumpTokens(path);
      if (!ids) return { note: 'a dump without token ids: taken to have run the tokens of the other side' };
      const pieces = await this.engine.call('pieces', { ids }).catch(() => null);
      return { ids, pieces, bos_added: false, dump: true };
    };
    const results = await Promise.all([a, b].map((path) => side(path).catch((err) => ({ error: err.message }))));
    if (request !== this.request) return;
    results.forEach((out, i) => {
      const label = el('span', { class: 'chip-side' }, i === 0 ? 'A' : 'B');
      if (out.error) {
        replace(boxes[i], label, el('span', { class: 'chip-note error-inline' }, out.error));
        return;
      }
      if (out.note) {
        replace(boxes[i], label, el('span', { class: 'chip-note' }, out.note));
        return;
      }
      const chips = out.ids.map((id, k) =>
        el(
          'span',
          { class: `chip${out.bos_added && k === 0 ? ' bos' : ''}`, title: out.bos_added && k === 0 ? 'BOS added by this path' : `token ${id}` },
          el('span', { class: 'id' }, id),
          out.pieces ? out.pieces[k] : null,
        ),
      );
      const note = `${out.ids.length} token${out.ids.length === 1 ? '' : 's'} · ${out.dump ? 'as the dump recorded them' : out.bos_added ? 'this path adds BOS' : 'no BOS added'}`;
      replace(boxes[i], label, ...chips, el('span', { class: 'chip-note' }, note));
    });
  }
}
