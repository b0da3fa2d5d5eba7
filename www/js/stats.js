// Stage statistics (capture `stats`): per stage and position, min, max, mean, RMS and the
// non-finite count. For a comparison, both paths side by side with their relative differences and
// the class against each side's measured noise; for a run, one path's summaries. A position and a
// layer are chosen above the table.

import { $, el, replace } from './dom.js';
import { num } from './format.js';

/** |B − A| / |A| as a percentage-like short text (strings such as "inf" pass through). */
function rel(x) {
  if (typeof x !== 'number') return String(x);
  if (x === 0) return '0';
  return x >= 1e-3 && x < 1e3 ? `${Number((x * 100).toPrecision(3))}%` : x.toExponential(2);
}

function nonFinite(s) {
  return s.non_finite ? `${s.non_finite} (first at ${s.first_non_finite})` : '0';
}

export class StatsTable {
  /** `root` holds `.stats-position`, `.stats-layer` selects and a `table`; `tokenLabel(id)` names a
   * token. */
  constructor(root, { tokenLabel }) {
    this.root = root;
    this.tokenLabel = tokenLabel;
    this.rows = [];
    this.kind = null;
    for (const sel of ['.stats-position', '.stats-layer']) $(sel, root).addEventListener('change', () => this.render());
  }

  /** A comparison's `stage_stats` (report of `compare` at capture stats). */
  showComparison(report) {
    this.kind = 'compare';
    this.rows = report.stage_stats ?? [];
    const first = report.first_stats_divergence;
    this.fill(report.compared_tokens, report.model?.config?.layers ?? 0, first ? first.position : 0);
  }

  /** A run's `stage_stats` (`run` at capture stats): one entry per stage, stats per position. */
  showRun(run) {
    this.kind = 'run';
    this.rows = (run.stage_stats ?? []).flatMap((s) => s.stats.map((stats, position) => ({ ...s, position, stats })));
    const layers = Math.max(0, ...this.rows.map((r) => (r.layer ?? -1) + 1));
    this.fill(run.tokens, layers, run.prompt_tokens - 1);
  }

  /** Choose a position and a layer (null: all layers). */
  select(position, layer = null) {
    $('.stats-position', this.root).value = String(position);
    $('.stats-layer', this.root).value = layer === null ? 'all' : String(layer);
    this.render();
  }

  fill(tokens, layers, position) {
    replace($('.stats-position', this.root), tokens.map((t, i) => el('option', { value: i }, `position ${i} (token ${this.tokenLabel(t)})`)));
    replace(
      $('.stats-layer', this.root),
      el('option', { value: 'all' }, 'all layers'),
      el('option', { value: 'global' }, 'outside the layers'),
      Array.from({ length: layers }, (_, l) => el('option', { value: l }, `layer ${l}`)),
    );
    $('.stats-position', this.root).value = String(Math.max(0, Math.min(position, tokens.length - 1)));
    $('.stats-layer', this.root).value = 'all';
    this.render();
  }

  render() {
    const position = Number($('.stats-position', this.root).value);
    const layer = $('.stats-layer', this.root).value;
    const rows = this.rows.filter((r) => r.position === position
      && (layer === 'all' || (layer === 'global' ? r.layer === null : r.layer === Number(layer))));
    const table = $('table', this.root);
    table.dataset.rows = String(rows.length);
    if (this.kind === 'compare') {
      replace(table,
        el('thead', {}, el('tr', {}, ['stage', 'class', '× threshold', 'mean A', 'mean B', 'Δ mean', 'RMS A', 'RMS B', 'Δ RMS',
          'min A', 'min B', 'Δ min', 'max A', 'max B', 'Δ max', 'NaN/Inf A', 'NaN/Inf B'].map((h, i) => el('th', { class: i > 1 ? 'num' : undefined }, h)))),
        el('tbody', {}, rows.map((r) => {
          const times = r.threshold > 0 ? r.max_abs / r.threshold : (r.max_abs > 0 ? Infinity : 0);
          return el('tr', { dataset: { class: r.class, name: r.name }, title: `noise A ${num(r.noise_a)}, B ${num(r.noise_b)}; threshold ${num(r.threshold)}` },
            el('td', { class: 'mono' }, r.name), el('td', {}, r.class), el('td', { class: 'num' }, num(times)),
            el('td', { class: 'num' }, num(r.a.mean)), el('td', { class: 'num' }, num(r.b.mean)), el('td', { class: 'num' }, rel(r.rel.mean)),
            el('td', { class: 'num' }, num(r.a.rms)), el('td', { class: 'num' }, num(r.b.rms)), el('td', { class: 'num' }, rel(r.rel.rms)),
            el('td', { class: 'num' }, num(r.a.min)), el('td', { class: 'num' }, num(r.b.min)), el('td', { class: 'num' }, rel(r.rel.min)),
            el('td', { class: 'num' }, num(r.a.max)), el('td', { class: 'num' }, num(r.b.max)), el('td', { class: 'num' }, rel(r.rel.max)),
            el('td', { class: 'num' }, nonFinite(r.a)), el('td', { class: 'num' }, nonFinite(r.b)));
        })));
    } else {
      replace(table,
        el('thead', {}, el('tr', {}, ['stage', 'values', 'min', 'max', 'mean', 'RMS', 'NaN/Inf'].map((h, i) => el('th', { class: i > 0 ? 'num' : undefined }, h)))),
        el('tbody', {}, rows.map((r) => el('tr', { dataset: { name: r.name } },
          el('td', { class: 'mono' }, r.name), el('td', { class: 'num' }, r.stats.len),
          el('td', { class: 'num' }, num(r.stats.min)), el('td', { class: 'num' }, num(r.stats.max)),
          el('td', { class: 'num' }, num(r.stats.mean)), el('td', { class: 'num' }, num(r.stats.rms)),
          el('td', { class: 'num' }, nonFinite(r.stats))))));
    }
  }
}
