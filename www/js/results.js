// The results of a comparison: verdict, explain, the per-position chart, the stages x layers
// heatmap, the stage inspector and the top-k table. All linked: a position chosen in the chart
// drives the heatmap, a cell chosen in the heatmap drives the inspector. At capture `stats` the
// heatmap and the inspector (which need every value) say so, and a table of the stages'
// statistics takes their place; at capture `off` only the logits are shown.

import { $, el, replace } from './dom.js';
import { num } from './format.js';
import { drawHeatmap, drawLegend, histogramChart, overlayChart, positionChart, ratio } from './charts.js';
import { StatsTable } from './stats.js';

/** What each capture level keeps, in words. */
export const CAPTURE_KEEPS = {
  full: 'every value of every stage',
  stats: 'per-stage statistics (min, max, mean, RMS, NaN/Inf) and the logits',
  off: 'only the logits',
};

const CLASS_RANK = { match: 0, noise: 1, diverged: 2 };

/** The stages in execution order (heatmap rows). */
const STAGES = ['tok_embd', 'attn_norm', 'q', 'k', 'v', 'q_normed', 'k_normed', 'q_rope', 'k_rope', 'kq', 'kq_softmax', 'kqv',
  'attn_out', 'ffn_inp', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_silu', 'ffn_act', 'ffn_out', 'l_out', 'result_norm', 'result_output'];

function parseName(name) {
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  return m ? { layer: Number(m[1]), stage: m[2] } : { layer: null, stage: name };
}

const CONTAINERS = { safetensors: 'safetensors', npy: '.npy files', npz: '.npz', llama_cpp_log: 'llama.cpp eval-callback log' };

function stageName(layer, stage) {
  return layer === null || layer === undefined ? stage : `blk.${layer}.${stage}`;
}

export class Results {
  /** `fetchStage(name, position, isolated)` returns `{a, b}`; `onView(view)` reports the selection;
   * `onWantFull()` asks for the comparison again with every value captured. */
  constructor(root, { fetchStage, onView, tokenText, onWantFull }) {
    this.root = root;
    this.fetchStage = fetchStage;
    this.onView = onView;
    this.tokenText = tokenText;
    this.onWantFull = onWantFull;
    this.capture = 'full';
    this.stats = new StatsTable($('#stage-stats', root), { tokenLabel: (id) => this.tokenLabel(id) });
    this.view = { position: null, stage: null };
    this.hit = null;
    const canvas = $('#heatmap', root);
    canvas.addEventListener('click', (e) => {
      const rect = canvas.getBoundingClientRect();
      const cell = this.hit?.(e.clientX - rect.left, e.clientY - rect.top);
      if (cell) this.select(stageName(cell.layer, cell.stage));
    });
    canvas.addEventListener('keydown', (e) => this.keyboard(e));
    $('#heat-position', root).addEventListener('change', (e) => {
      const v = e.target.value;
      this.view.position = v === 'max' ? null : Number(v);
      this.drawHeat();
      this.inspect();
      this.onView(this.view);
    });
    $('#heat-mode', root).addEventListener('change', () => {
      this.drawHeat();
      this.inspect();
    });
    drawLegend($('#heat-legend', root));
    window.addEventListener('resize', () => this.report && this.drawCharts());
  }

  get isolated() {
    return $('#heat-mode', this.root).value === 'isolated' && Boolean(this.report?.isolation);
  }

  /** Show a report; `view` restores a selection (from a shared link). */
  show(report, view = {}) {
    this.report = report;
    this.root.hidden = false;
    this.layers = report.model.config.layers;
    this.view = { position: view.position ?? null, stage: view.stage ?? null };
    if (!this.view.stage) {
      this.view.stage = report.first_divergence?.name ?? 'result_output';
      if (this.view.position === null && report.first_divergence) this.view.position = report.first_divergence.position;
    }
    const modeSel = $('#heat-mode', this.root);
    modeSel.disabled = !report.isolation;
    if (!report.isolation) modeSel.value = 'propagated';
    this.missing = [...(report.a.dump?.missing ?? []), ...(report.b.dump?.missing ?? [])].map(parseName);
    this.capture = report.capture ?? 'full';
    this.renderCapture();
    this.renderVerdict();
    this.renderExplain();
    this.renderDumps();
    this.renderTopK();
    const posSel = $('#heat-position', this.root);
    replace(
      posSel,
      el('option', { value: 'max' }, 'max over positions'),
      report.compared_tokens.map((t, i) => el('option', { value: i }, `position ${i} (token ${this.tokenLabel(t)})`)),
    );
    posSel.value = this.view.position === null ? 'max' : String(this.view.position);
    this.drawCharts();
    this.inspect();
  }

  /** What a capture level below `full` leaves out: the heatmap and the inspector say so (with a
   * way to capture everything), and at `stats` the statistics table is shown. */
  renderCapture() {
    const full = this.capture === 'full';
    this.root.dataset.capture = this.capture;
    for (const id of ['#heat-view', '#heat-position', '#heat-mode', '#inspector-body']) $(id, this.root).hidden = !full;
    for (const [id, what] of [['#heat-note', 'The stages × layers heatmap'], ['#inspect-note', 'The stage inspector']]) {
      const note = $(id, this.root);
      note.hidden = full;
      if (!full) {
        replace(note,
          el('strong', {}, 'Values were not captured. '),
          `This comparison ran with capture ${this.capture}, which keeps ${CAPTURE_KEEPS[this.capture]}. ${what} needs every value of every stage: `,
          el('button', { type: 'button', class: 'link', onclick: () => this.onWantFull() }, 'set capture to full and compare again'),
          this.capture === 'stats' ? '. The stage statistics are below.' : '.');
      }
    }
    if (!full) $('#inspect-title', this.root).textContent = '';
    const stats = $('#stage-stats', this.root);
    stats.hidden = this.capture !== 'stats';
    if (this.capture === 'stats') this.stats.showComparison(this.report);
  }

  tokenLabel(id) {
    const text = this.tokenText(id);
    return text ? `${id} ${text}` : String(id);
  }

  /** Where each side first produced a NaN or an infinity (the comparison goes on around them). */
  renderNonFinite() {
    const r = this.report;
    const box = $('#non-finite', this.root);
    const sides = ['a', 'b'].filter((s) => r.non_finite?.[s]);
    box.hidden = sides.length === 0;
    box.dataset.sides = sides.join(',');
    replace(box, ...sides.map((side) => {
      const f = r.non_finite[side];
      const what = f.value ?? 'a NaN or an Inf';
      return el('p', {},
        el('strong', {}, `${side.toUpperCase()} produces ${what}`), ' (', el('code', {}, r[side].text), ') first at ',
        el('code', {}, f.name), ` (${f.layer === null ? '' : `layer ${f.layer}, `}stage ${f.stage}) of position ${f.position} (token ${this.tokenLabel(f.token)}), element ${f.index}; `,
        `${f.stages} stage value${f.stages === 1 ? '' : 's'} at ${f.positions} position${f.positions === 1 ? '' : 's'} hold NaN or Inf. The comparison goes on over the finite values.`);
    }));
  }

  renderVerdict() {
    this.renderNonFinite();
    const r = this.report;
    const box = $('#verdict', this.root);
    box.className = `verdict ${r.verdict}`;
    box.dataset.verdict = r.verdict;
    const a = el('code', {}, r.a.text);
    const b = el('code', {}, r.b.text);
    // A side that rounds activations to 8 bits has a chaotic noise floor: say how it was measured.
    const spread = ['a', 'b'].filter((s) => r[s].noise === 'perturbation_spread');
    const chaos = spread.length
      ? el('span', { class: 'noise-note' }, ` ${spread.map((s) => s.toUpperCase()).join(' and ')} round${spread.length > 1 ? '' : 's'} activations to 8 bits as llama.cpp does: ${spread.length > 1 ? 'their' : 'its'} noise floor is ${r[spread[0]].noise_text}.`)
      : null;
    if (this.capture !== 'full') {
      this.renderSummaryVerdict(box, a, b, chaos);
      return;
    }
    if (r.verdict === 'agree') {
      const worst = r.stages.reduce((m, s) => Math.max(m, s.max_abs), 0);
      replace(box, el('strong', {}, `The paths agree within ${spread.length ? 'their noise' : 'float noise'}. `), b, ' and ', a,
        ` differ by at most ${num(worst)} anywhere, within ${r.tolerances.noise_multiple}× their measured noise.`, chaos);
      return;
    }
    const d = r.first_divergence;
    const parts = [
      el('strong', {}, 'The paths diverge. '),
      b, ' departs from ', a, ' first at ',
      el('button', { type: 'button', class: 'link', onclick: () => this.select(d.name, d.position) }, el('code', {}, d.name)),
      ` (${d.layer === null ? '' : `layer ${d.layer}, `}stage ${d.stage}) at position ${d.position} (token ${this.tokenLabel(r.compared_tokens[d.position])}): max |Δ| ${num(d.max_abs)}, ${num(d.times_threshold)}× the noise threshold.`,
    ];
    if (r.explain) parts.push(' ', el('span', { class: 'explain-line' }, `Explained by ${r.explain.summary}.`));
    if (chaos) parts.push(chaos);
    replace(box, ...parts);
  }

  /** The verdict at capture `stats` or `off`: where the statistics part, where the logits part
   * (the first divergent token), and what a full capture would add. */
  renderSummaryVerdict(box, a, b, chaos) {
    const r = this.report;
    const stats = this.capture === 'stats';
    const d = r.first_divergence;
    const s = r.first_stats_divergence;
    const flip = r.logits.find((m) => m.top1_a !== m.top1_b);
    const at = (p) => `position ${p} (token ${this.tokenLabel(r.compared_tokens[p])})`;
    const level = el('span', { class: 'noise-note' },
      ` Capture ${this.capture} keeps ${CAPTURE_KEEPS[this.capture]}: ${stats ? 'statistics can agree where values differ, so ' : ''}capture full compares every value${stats ? '' : ' and locates the stage'}.`);
    if (r.verdict === 'agree') {
      replace(box, el('strong', {}, `The paths agree within ${chaos ? 'their noise' : 'float noise'}. `), b, ' and ', a,
        stats ? ' agree on the logits and on every stage’s statistics at every position.' : ' agree on the logits at every position.', level, chaos);
      return;
    }
    const parts = [el('strong', {}, 'The paths diverge. '), b, ' departs from ', a];
    if (s) {
      parts.push(': the statistics first part at ',
        el('button', { type: 'button', class: 'link', onclick: () => this.stats.select(s.position, s.layer) }, el('code', {}, s.name)),
        ` (${s.layer === null ? '' : `layer ${s.layer}, `}stage ${s.stage}) at ${at(s.position)}: the largest |Δ| of a statistic ${num(s.max_abs)}, ${num(s.threshold > 0 ? s.max_abs / s.threshold : Infinity)}× the noise threshold`);
    }
    parts.push(s ? '; ' : ': ');
    parts.push(d
      ? `the logits diverge first at ${at(d.position)}, max |Δ| ${num(d.max_abs)}, ${num(d.times_threshold)}× the noise threshold`
      : 'the logits agree within float noise');
    parts.push(flip ? `; the top token first differs at ${at(flip.position)}.` : '; the top token is the same at every position.');
    if (r.explain) parts.push(' ', el('span', { class: 'explain-line' }, `Explained by ${r.explain.summary}.`));
    parts.push(level);
    if (chaos) parts.push(chaos);
    replace(box, ...parts);
  }

  renderExplain() {
    const e = this.report.explain;
    const box = $('#explain-panel', this.root);
    box.hidden = !e;
    if (!e) return;
    const field = (spec, f) => spec[f] === undefined ? '' : spec[f];
    const rows = e.ranges.map((r) =>
      el('tr', {},
        el('td', {}, r.positions[0] === r.positions[1] ? `position ${r.positions[0]}` : `positions ${r.positions[0]}-${r.positions[1]}`),
        el('td', {}, r.flips.map((f) => el('div', {}, el('code', {}, f), `: ${field(this.report.b.spec, f)} → ${field(this.report.a.spec, f)}`))),
        el('td', { class: 'muted' }, (r.alternatives || []).map((a) => a.join(' + ')).join('; '))));
    replace(
      box,
      el('h3', {}, 'Explain'),
      el('p', {}, `B is run with A's value of each convention where they differ, alone and in combinations; the smallest sets of flips that bring B to A (every stage within noise) are: `, el('strong', {}, e.summary), '.'),
      rows.length ? el('table', { class: 'data compact' }, el('thead', {}, el('tr', {}, el('th', {}, 'where'), el('th', {}, 'flip (B → A)'), el('th', {}, 'equally small alternatives'))), el('tbody', {}, rows)) : null,
      el('p', { class: 'muted small' },
        `${e.runs} runs (budget ${e.budget}${e.capped ? ', the search was capped' : ''}). Differing conventions: ${e.differing.join(', ') || 'none'}.`,
        e.no_effect.length ? ` Without effect on this model: ${e.no_effect.join(', ')}.` : '',
        e.unexplained.length ? ` Unexplained at position ${e.unexplained.join(', ')}.` : ''),
    );
  }

  /** How each side's noise was obtained, for the inspector. */
  noiseSource() {
    const r = this.report;
    return r.a.noise === r.b.noise ? `each side ${r.a.noise_text}` : `A ${r.a.noise_text}; B ${r.b.noise_text}`;
  }

  /** What each dump held and what became of every tensor. */
  renderDumps() {
    const r = this.report;
    const box = $('#dump-report', this.root);
    const sides = ['a', 'b'].filter((s) => r[s].dump);
    box.hidden = !sides.length;
    if (!sides.length) return;
    const parts = [];
    for (const side of sides) {
      const d = r[side].dump;
      const count = (k) => d.entries.filter((e) => e.kind === k).length;
      const [mapped, unaligned, unmapped] = [count('mapped'), count('unaligned'), count('unmapped')];
      const others = d.entries.length - mapped - unaligned - unmapped;
      parts.push(
        el('h3', {}, `Dump ${side.toUpperCase()}: `, el('span', { class: 'mono' }, d.label)),
        el('p', {},
          `${CONTAINERS[d.container] ?? d.container}${d.naming ? `, ${d.naming} names` : ''}: ${d.entries.length} tensors, `,
          el('strong', {}, `${mapped} compared`),
          ` over ${d.tokens.length} positions (token ids ${d.token_source === 'file' ? 'from the file' : 'of the prompt'})`,
          others ? `, ${others} ignored or copies` : '',
          unaligned ? `, ${unaligned} unaligned` : '',
          unmapped ? `, ${unmapped} unmapped` : '',
          d.metadata.producer ? `. Made by ${d.metadata.producer}.` : '.'),
      );
      if (d.warnings.length) parts.push(el('ul', { class: 'warn' }, d.warnings.map((w) => el('li', {}, w))));
      const problems = d.entries.filter((e) => e.kind === 'unaligned' || e.kind === 'unmapped');
      if (problems.length) {
        parts.push(el('table', { class: 'data compact dump-problems' },
          el('thead', {}, el('tr', {}, el('th', {}, 'not compared'), el('th', {}, 'shape'), el('th', {}, 'why'))),
          el('tbody', {}, problems.map((e) => el('tr', {}, el('td', { class: 'mono' }, e.name), el('td', { class: 'mono' }, JSON.stringify(e.shape)),
            el('td', {}, e.kind === 'unmapped' ? 'no naming knows this name: a mapping file can name it' : `meant for ${e.stage}: ${e.reason}`))))));
      }
      if (d.missing.length) parts.push(el('p', {}, `Not in the dump (hatched in the heatmap): `, el('span', { class: 'mono' }, d.missing.join(', '))));
      if (d.partial.length) {
        const known = d.partial.reduce((s, p) => s + p[1], 0);
        const total = d.partial.reduce((s, p) => s + p[2], 0);
        parts.push(el('p', {}, `${d.partial.length} stages only partly known: ${known} of ${total} values compared.`));
      }
      const outcome = (e) => {
        if (e.kind === 'mapped') return `→ ${e.stage} (positions ${e.positions[0]}–${e.positions[1]}${e.known < e.total ? `, ${e.known} of ${e.total} values` : ''})${e.steps.length ? `; ${e.steps.join('; ')}` : ''}`;
        if (e.kind === 'duplicate') return `copy of ${e.stage} (${e.used} is used)`;
        if (e.kind === 'ignored') return `ignored: ${e.reason}`;
        if (e.kind === 'unaligned') return `unaligned (${e.stage}): ${e.reason}`;
        return 'unmapped';
      };
      parts.push(el('details', {}, el('summary', {}, `Every tensor (${d.entries.length})`),
        el('div', { class: 'table-wrap' }, el('table', { class: 'data compact' },
          el('thead', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'shape'), el('th', {}, 'dtype'), el('th', {}, 'became'))),
          el('tbody', {}, d.entries.map((e) => el('tr', { dataset: { kind: e.kind } },
            el('td', { class: 'mono' }, e.op ? `${e.name} (${e.op})` : e.name), el('td', { class: 'mono' }, JSON.stringify(e.shape)),
            el('td', {}, e.dtype), el('td', {}, outcome(e)))))))));
    }
    replace(box, ...parts);
  }

  renderTopK() {
    const r = this.report;
    const chips = (list, other) =>
      list.map((c) => el('span', { class: `cand${other.some((o) => o.id === c.id) ? '' : ' only'}`, title: `logit ${c.logit}, p ${c.prob}` },
        el('span', { class: 'mono' }, this.tokenLabel(c.id)), el('span', { class: 'muted' }, ` ${(c.prob * 100).toFixed(1)}%`)));
    const rows = r.top_k.map((t, i) =>
      el('tr', { dataset: { position: t.position } },
        el('td', { class: 'num' }, t.position),
        el('td', { class: 'mono' }, this.tokenLabel(t.token)),
        el('td', {}, el('div', { class: 'candidates' }, chips(t.a, t.b))),
        el('td', {}, el('div', { class: 'candidates' }, chips(t.b, t.a))),
        el('td', { class: 'num' }, num(r.logits[i]?.kld ?? 0))));
    replace($('#topk tbody', this.root), rows.length ? rows : el('tr', {}, el('td', { colspan: 5, class: 'muted' }, r.logits_note || 'No logits to compare.')));
  }

  drawCharts() {
    positionChart($('#position-chart', this.root), this.report, {
      onSelect: (i) => {
        this.view.position = i;
        $('#heat-position', this.root).value = String(i);
        if (this.capture === 'stats') this.stats.select(i, null);
        this.drawHeat();
        this.inspect();
        this.onView(this.view);
      },
    });
    this.drawHeat();
  }

  /** The diffs the heatmap and inspector read: propagated, or isolated. */
  diffs() {
    return this.isolated ? this.report.isolation.stages : this.report.stages;
  }

  drawHeat() {
    if (this.capture !== 'full') return;
    const diffs = this.diffs();
    const cells = new Map();
    const order = [];
    const everywhere = new Set();
    for (const d of diffs) everywhere.add(d.layer === null ? `g|${d.stage}` : `${d.layer}|${d.stage}`);
    for (const d of diffs) {
      if (this.view.position !== null && d.position !== this.view.position) continue;
      const key = d.layer === null ? `g|${d.stage}` : `${d.layer}|${d.stage}`;
      if (!order.some((o) => o.stage === d.stage && o.global === (d.layer === null))) order.push({ stage: d.stage, global: d.layer === null });
      const v = ratio(d);
      const old = cells.get(key);
      const better = !old || CLASS_RANK[d.class] > CLASS_RANK[old.cls] || (d.class === old.cls && (v ?? -99) > (old.v ?? -99));
      if (better) cells.set(key, { cls: d.class, v, position: d.position });
    }
    // Gaps: stages a dump lacks, and (at one position) stages it lacks there.
    for (const m of this.missing) {
      const key = m.layer === null ? `g|${m.stage}` : `${m.layer}|${m.stage}`;
      if (!cells.has(key)) cells.set(key, { cls: 'missing', v: null });
      if (!order.some((o) => o.stage === m.stage && o.global === (m.layer === null))) order.push({ stage: m.stage, global: m.layer === null });
    }
    for (const key of everywhere) if (!cells.has(key)) cells.set(key, { cls: 'absent', v: null });
    const rank = (o) => STAGES.indexOf(o.stage) + (o.global && o.stage !== 'tok_embd' ? 100 : 0);
    const rows = [...order].sort((x, y) => rank(x) - rank(y)).map((o) => ({ ...o, label: o.stage }));
    this.cells = cells;
    this.rows = rows;
    const sel = this.selectedId();
    const canvas = $('#heatmap', this.root);
    this.hit = drawHeatmap(canvas, { rows, layers: this.layers, cells, selected: sel });
    canvas.dataset.cells = String(cells.size);
    canvas.dataset.diverged = String([...cells.values()].filter((c) => c.cls === 'diverged').length);
    canvas.dataset.gaps = String([...cells.values()].filter((c) => c.cls === 'missing' || c.cls === 'absent').length);
  }

  selectedId() {
    const name = this.view.stage;
    if (!name) return null;
    const m = /^blk\.(\d+)\.(.+)$/.exec(name);
    return m ? { layer: Number(m[1]), stage: m[2] } : { layer: null, stage: name };
  }

  keyboard(e) {
    const sel = this.selectedId();
    if (!sel || !this.rows?.length) return;
    let r = this.rows.findIndex((row) => row.stage === sel.stage && row.global === (sel.layer === null));
    let l = sel.layer ?? 0;
    if (e.key === 'ArrowDown') r = Math.min(this.rows.length - 1, r + 1);
    else if (e.key === 'ArrowUp') r = Math.max(0, r - 1);
    else if (e.key === 'ArrowRight') l = Math.min(this.layers - 1, l + 1);
    else if (e.key === 'ArrowLeft') l = Math.max(0, l - 1);
    else if (e.key !== 'Enter') return;
    e.preventDefault();
    const row = this.rows[r];
    this.select(stageName(row.global ? null : l, row.stage));
  }

  /** Select a stage (and optionally a position) for the inspector. */
  select(name, position) {
    this.view.stage = name;
    if (position !== undefined) {
      this.view.position = position;
      $('#heat-position', this.root).value = String(position);
    }
    this.drawHeat();
    this.inspect();
    this.onView(this.view);
  }

  /** Fill the stage inspector for the selected stage at the selected (or worst) position. */
  async inspect() {
    if (this.capture !== 'full') return;
    const name = this.view.stage;
    const diffs = this.diffs().filter((d) => d.name === name);
    if (!diffs.length) {
      const missing = this.missing.some((m) => stageName(m.layer, m.stage) === name);
      $('#inspect-title', this.root).textContent = `${name}: not compared${missing ? ' (not in the dump)' : ''}`;
      replace($('#inspect-metrics tbody', this.root));
      replace($('#inspect-worst tbody', this.root));
      $('#overlay-chart', this.root).replaceChildren();
      $('#diff-histogram', this.root).replaceChildren();
      return;
    }
    const d = this.view.position !== null
      ? diffs.find((x) => x.position === this.view.position) ?? diffs[0]
      : diffs.reduce((w, x) => (CLASS_RANK[x.class] > CLASS_RANK[w.class] || (x.class === w.class && x.max_abs > w.max_abs) ? x : w));
    const token = this.tokenLabel(this.report.compared_tokens[d.position]);
    $('#inspect-title', this.root).textContent = `${name} · position ${d.position} (token ${token})${this.isolated ? ' · isolated' : ''}`;
    const metrics = [
      ['class', d.class],
      ['max |B − A|', `${num(d.max_abs)} at index ${d.argmax ?? '—'}`],
      ['noise threshold', `${num(d.threshold)} = ${this.report.tolerances.noise_multiple} × max(${num(d.noise_a)}, ${num(d.noise_b)}) + floor`],
      ['noise A / B', `${num(d.noise_a)} / ${num(d.noise_b)} (${this.noiseSource()})`],
      ['mean |B − A|', num(d.mean_abs)],
      ['RMSE', num(d.rmse)],
      ['relative L2', typeof d.rel_l2 === 'number' ? num(d.rel_l2) : d.rel_l2],
      ['cosine', num(d.cosine)],
      ['NMSE', typeof d.nmse === 'number' ? num(d.nmse) : d.nmse],
      ['max |A|', num(d.max_ref)],
      ['allclose', `${d.allclose} (${d.out_of_tolerance} of ${d.n} outside${d.first_out_of_tolerance !== null ? `, first at ${d.first_out_of_tolerance}` : ''})`],
      ['NaN / Inf (A, B)', `${d.nan_a}/${d.inf_a}, ${d.nan_b}/${d.inf_b}`],
    ];
    if (d.note) metrics.push(['note', d.note]);
    if (d.of) metrics.push(['compared', `${d.n} of ${d.of} values (the others are not in the dump)`]);
    replace($('#inspect-metrics tbody', this.root), metrics.map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, String(v)))));
    let values;
    try {
      values = await this.fetchStage(name, d.position, this.isolated);
    } catch (err) {
      replace($('#inspect-worst tbody', this.root), el('tr', {}, el('td', { colspan: 4 }, err.message)));
      return;
    }
    const { a, b } = values;
    const order = Array.from(a, (_, i) => i)
      .filter((i) => Number.isFinite(a[i]) && Number.isFinite(b[i]))
      .sort((i, j) => Math.abs(b[j] - a[j]) - Math.abs(b[i] - a[i]))
      .slice(0, 10);
    replace($('#inspect-worst tbody', this.root), order.map((i) =>
      el('tr', {}, el('td', { class: 'num' }, i), el('td', { class: 'num' }, num(a[i])), el('td', { class: 'num' }, num(b[i])), el('td', { class: 'num' }, num(b[i] - a[i])))));
    overlayChart($('#overlay-chart', this.root), a, b);
    histogramChart($('#diff-histogram', this.root), a, b);
  }
}
