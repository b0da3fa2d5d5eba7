// Charts: the per-position chart and the stage inspector's charts use uPlot (from npm, copied to
// www/vendor at build time); the stages x layers heatmap is a plain canvas.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { num as fmt } from './format.js';

/** Axis tick text (uPlot passes null for ticks it leaves out). */
const num = (t) => (t === null || t === undefined ? '' : fmt(t));

const FLOOR = 1e-12; // log-scale charts cannot show 0

/** The heatmap value of a stage diff: log10(max|Δ| / threshold), or null when bit-identical. */
export function ratio(d) {
  if (d.class === 'match' && d.max_abs === 0) return null;
  const t = d.threshold > 0 ? d.threshold : FLOOR;
  return Math.log10(Math.max(d.max_abs, FLOOR) / t);
}

function mix(c1, c2, t) {
  const p = (c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
  const [a, b] = [p(c1), p(c2)];
  const x = Math.min(1, Math.max(0, t));
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * x)).join(',')})`;
}

/** Colour of a cell: white bit-identical, greens for noise, yellow to dark red for divergence. */
export function cellColor(cls, v) {
  if (v === null || v === undefined) return '#ffffff';
  if (cls !== 'diverged') return mix('#eef8f1', '#5fb37c', (v + 6) / 6);
  if (v < 2) return mix('#fdd49e', '#fc8d59', v / 2);
  if (v < 4) return mix('#fc8d59', '#d7301f', (v - 2) / 2);
  return mix('#d7301f', '#67000d', (v - 4) / 4);
}

export function drawLegend(canvas) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  for (let x = 0; x < width; x++) {
    const v = -6 + (14 * x) / width;
    ctx.fillStyle = cellColor(v <= 0 ? 'noise' : 'diverged', v);
    ctx.fillRect(x, 0, 1, height);
  }
}

/**
 * The stages x layers grid. `cells` maps `${layer}|${stage}` to {cls, v, position}; `rows` lists
 * stage names (global stages first/last); returns a hit test `(x, y) -> {layer, stage}`.
 */
export function drawHeatmap(canvas, { rows, layers, cells, selected }) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const label = Math.min(120, width * 0.25);
  const rowH = 18;
  const head = 18;
  const height = head + rows.length * rowH;
  canvas.width = width * dpr;
  canvas.height = height * dpr;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '11px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  const colW = (width - label) / Math.max(1, layers);
  ctx.fillStyle = '#5f6b7a';
  for (let l = 0; l < layers; l++) {
    if (colW > 22 || l % Math.ceil(22 / colW) === 0) ctx.fillText(`L${l}`, label + l * colW + 2, head / 2);
  }
  rows.forEach((row, r) => {
    const y = head + r * rowH;
    ctx.fillStyle = '#1d2330';
    ctx.fillText(row.label, 2, y + rowH / 2);
    for (let l = 0; l < layers; l++) {
      const key = row.global ? `g|${row.stage}` : `${l}|${row.stage}`;
      const c = cells.get(key);
      const [x, w] = [label + l * colW + 0.5, Math.max(1, colW - 1)];
      if (c && (c.cls === 'missing' || c.cls === 'absent')) {
        hatch(ctx, x, y + 0.5, w, rowH - 1);
      } else {
        ctx.fillStyle = c ? cellColor(c.cls, c.v) : '#f1f3f6';
        ctx.fillRect(x, y + 0.5, w, rowH - 1);
      }
    }
  });
  if (selected) {
    const r = rows.findIndex((row) => row.stage === selected.stage && row.global === (selected.layer === null));
    if (r >= 0) {
      ctx.strokeStyle = '#1d2330';
      ctx.lineWidth = 2;
      const x0 = selected.layer === null ? label : label + selected.layer * colW;
      const w = selected.layer === null ? width - label : colW;
      ctx.strokeRect(x0 + 1, head + r * rowH + 1, w - 2, rowH - 2);
    }
  }
  return (x, y) => {
    const r = Math.floor((y - head) / rowH);
    if (r < 0 || r >= rows.length || x < label) return null;
    const row = rows[r];
    const l = Math.min(layers - 1, Math.floor((x - label) / colW));
    return { stage: row.stage, layer: row.global ? null : l };
  };
}

function baseOpts(container, height, series, scales, axes) {
  return {
    width: Math.max(280, container.clientWidth || 600),
    height,
    series: [{}, ...series],
    scales,
    axes,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
}

/** A cell with nothing to compare (a stage a dump lacks): grey with diagonal lines. */
function hatch(ctx, x, y, w, h) {
  ctx.fillStyle = '#f6f7f9';
  ctx.fillRect(x, y, w, h);
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, w, h);
  ctx.clip();
  ctx.strokeStyle = '#aab4c2';
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let d = -h; d < w; d += 5) {
    ctx.moveTo(x + d, y + h);
    ctx.lineTo(x + d + h, y);
  }
  ctx.stroke();
  ctx.restore();
}

/** Per-position chart: max |Δ logit| and KLD (log scales), top-1 agreement as points. */
export function positionChart(container, report, { onSelect }) {
  container.replaceChildren();
  if (!report.logits.length) {
    container.dataset.points = JSON.stringify({ max_abs: [], kld: [], agree: [] });
    const note = document.createElement('p');
    note.className = 'muted chart-note';
    note.textContent = report.logits_note || 'No logits to compare.';
    container.append(note);
    return null;
  }
  const xs = report.logits.map((m, i) => m.position ?? i);
  const dl = report.logits.map((m) => Math.max(m.max_abs, FLOOR));
  const kld = report.logits.map((m) => (typeof m.kld === 'number' ? Math.max(m.kld, FLOOR) : null));
  const agree = report.logits.map((m) => (m.top1_agree ? 1 : 0));
  container.dataset.points = JSON.stringify({ max_abs: report.logits.map((m) => m.max_abs), kld: report.logits.map((m) => m.kld), agree });
  const opts = baseOpts(
    container,
    220,
    [
      { label: 'max |Δ logit|', scale: 'd', stroke: '#2f5f98', width: 2, points: { show: true, size: 6 } },
      { label: 'KLD (nats)', scale: 'k', stroke: '#c2410c', width: 2, dash: [6, 4], points: { show: true, size: 6 } },
      {
        label: 'same top-1',
        scale: 'a',
        stroke: 'transparent',
        points: { show: true, size: 9, stroke: '#1f7a4d', fill: '#1f7a4d' },
        paths: () => null,
      },
    ],
    { x: { time: false }, d: { distr: 3 }, k: { distr: 3 }, a: { range: [-0.2, 1.2] } },
    [
      { label: 'position', values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? t : '')) },
      { scale: 'd', label: 'max |Δ logit|', values: (u, ticks) => ticks.map((t) => num(t)) },
      { scale: 'k', side: 1, label: 'KLD', grid: { show: false }, values: (u, ticks) => ticks.map((t) => num(t)) },
    ],
  );
  opts.hooks = {
    init: [
      (u) => {
        u.over.addEventListener('click', () => {
          const i = u.cursor.idx;
          if (i !== null && i !== undefined) onSelect(xs[i]);
        });
      },
    ],
  };
  return new uPlot(opts, [xs, dl, kld, agree.map((a) => (a ? 1 : 0))], container);
}

/** A and B values of a stage, overlaid (elements a dump lacks are left out: shown as points). */
export function overlayChart(container, a, b) {
  container.replaceChildren();
  const xs = Array.from(a, (_, i) => i);
  const gaps = (v) => Array.from(v, (x) => (Number.isFinite(x) ? x : null));
  const sparse = (v) => Array.from(v).some((x) => !Number.isFinite(x));
  const points = (on) => ({ show: on, size: 5 });
  const opts = baseOpts(
    container,
    200,
    [
      { label: 'A', stroke: '#2f5f98', width: 1.5, points: points(sparse(a)), ...(sparse(a) ? { paths: () => null } : {}) },
      { label: 'B', stroke: '#c2410c', width: 1, dash: [4, 3], points: points(sparse(b)), ...(sparse(b) ? { paths: () => null } : {}) },
    ],
    { x: { time: false } },
    [{ label: 'element' }, { values: (u, ticks) => ticks.map((t) => num(t)) }],
  );
  return new uPlot(opts, [xs, gaps(a), gaps(b)], container);
}

/** Histogram of B − A. */
export function histogramChart(container, a, b, bins = 40) {
  container.replaceChildren();
  const d = Array.from(a, (x, i) => b[i] - x).filter(Number.isFinite);
  let lo = Math.min(...d);
  let hi = Math.max(...d);
  if (!(hi > lo)) {
    lo -= 1e-12;
    hi += 1e-12;
  }
  const w = (hi - lo) / bins;
  const counts = new Array(bins).fill(0);
  for (const x of d) counts[Math.min(bins - 1, Math.floor((x - lo) / w))] += 1;
  const centers = counts.map((_, i) => lo + (i + 0.5) * w);
  const opts = baseOpts(
    container,
    160,
    [{ label: 'elements', stroke: '#5f6b7a', fill: 'rgba(59,110,168,0.5)', paths: uPlot.paths.bars({ size: [0.9, 100] }), points: { show: false } }],
    { x: { time: false } },
    [{ label: 'B − A', values: (u, ticks) => ticks.map((t) => num(t)) }, {}],
  );
  return new uPlot(opts, [centers, counts], container);
}
