// The two paths: a text form each (`hf,rope_pairing=interleaved`), a preset menu, and every
// convention as a control; rows where B differs from A are highlighted. The engine parses and
// canonicalises every change, so the text, the controls and the URL always agree. A side may
// also be a dump (`dump:<name>`, from the dumps panel): its conventions are unknown.

import { $, el, replace } from './dom.js';

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export class PathsEditor {
  /** `onChange()` is called whenever either path changes (to a valid spec); `dumpLookup(text)`
   * says whether `dump:<name>` names a kept dump. */
  constructor(root, engine, { onChange, dumpLookup }) {
    this.root = root;
    this.engine = engine;
    this.onChange = onChange;
    this.dumpLookup = dumpLookup;
    this.state = { a: { text: 'hf', fields: {} }, b: { text: 'hf', fields: {} } };
    this.controls = { a: {}, b: {} };
  }

  /** Build the controls from the engine's field list and presets. */
  async init() {
    const [fields, presets] = await Promise.all([this.engine.call('path_fields'), this.engine.call('presets')]);
    this.fields = fields;
    this.presets = presets.map((p) => p.name);
    for (const side of ['a', 'b']) {
      const select = $(`#preset-${side}`, this.root);
      replace(select, [...presets.map((p) => el('option', { value: p.name, title: p.description }, p.name)), el('option', { value: '' }, 'custom')]);
      select.addEventListener('change', () => select.value && this.setText(side, select.value));
      const input = $(`#path-${side}`, this.root);
      input.addEventListener('input', debounce(() => this.setText(side, input.value, { fromInput: true }), 250));
    }
    const rows = fields.map((f) => {
      const cells = ['a', 'b'].map((side) => {
        let control;
        if (f.numeric) {
          control = el('input', { list: `values-${f.name}`, spellcheck: 'false', 'aria-label': `${f.name} of path ${side.toUpperCase()}`, size: 10 });
          control.addEventListener('change', () => this.setField(side, f.name, control.value.trim()));
        } else {
          control = el('select', { 'aria-label': `${f.name} of path ${side.toUpperCase()}` }, f.values.map((v) => el('option', { value: v }, v)));
          control.addEventListener('change', () => this.setField(side, f.name, control.value));
        }
        this.controls[side][f.name] = control;
        return el('td', {}, control);
      });
      return el('tr', { dataset: { field: f.name } }, el('th', { scope: 'row', title: f.about }, el('code', {}, f.name), el('span', { class: 'muted small' }, ` ${f.about}`)), ...cells);
    });
    replace($('#conventions tbody', this.root), rows);
    for (const f of fields.filter((x) => x.numeric)) {
      this.root.append(el('datalist', { id: `values-${f.name}` }, el('option', { value: 'metadata' })));
    }
  }

  texts() {
    return [this.state.a.text, this.state.b.text];
  }

  /** Parse what is typed now (the editors otherwise wait for a pause); throws if it is invalid. */
  async commit() {
    for (const side of ['a', 'b']) {
      const input = $(`#path-${side}`, this.root);
      if (input.value.trim() !== this.state[side].text && !(await this.setText(side, input.value, { fromInput: true, quiet: true }))) {
        throw new Error(`Path ${side.toUpperCase()}: ${input.title}`);
      }
    }
  }

  async set(a, b) {
    await Promise.all([this.setText('a', a, { quiet: true }), this.setText('b', b, { quiet: true })]);
  }

  /** Whether a side is a dump. */
  isDump(side) {
    return Boolean(this.state[side].dump);
  }

  /** Parse `text` for `side`; on success update the text box, controls and highlights. */
  async setText(side, text, { fromInput = false, quiet = false } = {}) {
    const input = $(`#path-${side}`, this.root);
    if (text.trim().startsWith('dump:')) {
      const t = text.trim();
      if (!this.dumpLookup(t)) {
        input.setAttribute('aria-invalid', 'true');
        input.title = `${t.slice(5)} is not among the dumps: add it in the Dumps card`;
        this.showError(input.title);
        return false;
      }
      this.state[side] = { text: t, fields: {}, dump: true };
      input.removeAttribute('aria-invalid');
      input.title = '';
      if (!fromInput) input.value = t;
      this.render();
      if (!quiet) this.onChange();
      return true;
    }
    try {
      const parsed = await this.engine.call('path_spec', { text });
      this.state[side] = parsed;
      input.removeAttribute('aria-invalid');
      input.title = '';
      if (!fromInput) input.value = parsed.text;
      this.render();
      if (!quiet) this.onChange();
      return true;
    } catch (err) {
      input.setAttribute('aria-invalid', 'true');
      input.title = err.message;
      this.showError(err.message);
      return false;
    }
  }

  setField(side, field, value) {
    return this.setText(side, `${this.state[side].text},${field}=${value}`);
  }

  showError(message) {
    const box = $('#setup-error');
    box.hidden = !message;
    box.textContent = message || '';
  }

  render() {
    this.showError('');
    for (const side of ['a', 'b']) {
      const { text, fields, dump } = this.state[side];
      for (const [name, control] of Object.entries(this.controls[side])) {
        if (dump) control.value = '';
        else if (fields[name] !== undefined) control.value = fields[name];
        control.disabled = Boolean(dump);
        control.parentElement.classList.toggle('dump-side', Boolean(dump));
        control.title = dump ? 'an imported dump: its conventions are whatever its engine did' : '';
      }
      const preset = $(`#preset-${side}`, this.root);
      preset.value = this.presets.includes(text) ? text : '';
      $(`.path-col[data-side="${side}"]`, this.root).classList.toggle('is-dump', Boolean(dump));
    }
    const anyDump = this.state.a.dump || this.state.b.dump;
    for (const row of this.root.querySelectorAll('#conventions tbody tr')) {
      const f = row.dataset.field;
      const differs = !anyDump && this.state.a.fields[f] !== this.state.b.fields[f];
      row.classList.toggle('differs', differs);
      row.title = differs ? `B differs from A in ${f}` : '';
    }
  }
}
