/** A small SVG chart of metric series (dots and lines, axes with round ticks), coloured by the Lab
 * theme's CSS variables so it reads in the light and the dark theme. No charting library: two chart
 * kinds do not earn one. */
import { extent, fmtValue, scale, Series, ticks } from './experiment-model';

const SVG = 'http://www.w3.org/2000/svg';
const PALETTE = 6; // .pai-Series-<n> colours in style/base.css

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

function titled<T extends SVGElement>(node: T, text: string): T {
  const t = document.createElementNS(SVG, 'title');
  t.textContent = text;
  node.appendChild(t);
  return node;
}

export interface ChartOptions {
  width?: number;
  height?: number;
  xLabel: string;
  yLabel: string;
  /** what the chart shows, for screen readers */
  description: string;
}

/** The chart as an `<svg role="img">`; an empty-state message when no series has a point. */
export function metricChart(series: Series[], opts: ChartOptions): SVGSVGElement {
  const width = opts.width ?? 560;
  const height = opts.height ?? 240;
  const m = { left: 56, right: 12, top: 10, bottom: 34 };
  const svg = el('svg', { class: 'pai-Chart', viewBox: `0 0 ${width} ${height}`, role: 'img' });
  svg.setAttribute('aria-label', opts.description);
  const box = extent(series);
  if (!box) {
    const msg = el('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'pai-ChartEmpty' });
    msg.textContent = 'No metrics reported yet.';
    svg.appendChild(msg);
    return svg;
  }
  const pad = (lo: number, hi: number): [number, number] => {
    const d = hi - lo || Math.abs(hi) || 1;
    return [lo - d * 0.05, hi + d * 0.05];
  };
  const xDomain: [number, number] = box.x[0] === box.x[1] ? [box.x[0] - 1, box.x[1] + 1] : box.x;
  const yDomain = pad(box.y[0], box.y[1]);
  const x = scale(xDomain, [m.left, width - m.right]);
  const y = scale(yDomain, [height - m.bottom, m.top]);
  const axes = el('g', { class: 'pai-ChartAxes' });
  axes.append(
    el('line', { x1: m.left, y1: height - m.bottom, x2: width - m.right, y2: height - m.bottom }),
    el('line', { x1: m.left, y1: m.top, x2: m.left, y2: height - m.bottom })
  );
  for (const v of ticks(yDomain[0], yDomain[1], 4)) {
    const label = el('text', { x: m.left - 4, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = fmtValue(v);
    axes.append(el('line', { class: 'pai-ChartGrid', x1: m.left, y1: y(v), x2: width - m.right, y2: y(v) }), label);
  }
  for (const v of ticks(xDomain[0], xDomain[1], 6).filter(Number.isInteger)) {
    const label = el('text', { x: x(v), y: height - m.bottom + 14, 'text-anchor': 'middle' });
    label.textContent = String(v);
    axes.append(label);
  }
  const xl = el('text', { x: (m.left + width - m.right) / 2, y: height - 4, 'text-anchor': 'middle' });
  xl.textContent = opts.xLabel;
  const yl = el('text', { x: 12, y: (m.top + height - m.bottom) / 2, 'text-anchor': 'middle',
    transform: `rotate(-90 12 ${(m.top + height - m.bottom) / 2})` });
  yl.textContent = opts.yLabel;
  axes.append(xl, yl);
  svg.appendChild(axes);
  series.forEach((s, i) => {
    const g = el('g', { class: `pai-Series pai-Series-${i % PALETTE} ${s.className ?? ''}`.trim() });
    g.setAttribute('data-series', s.name);
    if (s.kind === 'line' && s.points.length > 1) {
      const d = s.points.map(p => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ');
      g.appendChild(titled(el('polyline', { points: d, fill: 'none' }), s.name));
    }
    for (const p of s.points) {
      g.appendChild(titled(el('circle', { cx: x(p.x).toFixed(1), cy: y(p.y).toFixed(1), r: s.kind === 'dots' ? 4 : 2.5 }), p.label));
    }
    svg.appendChild(g);
  });
  return svg;
}
