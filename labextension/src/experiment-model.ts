/**
 * Pure logic of the experiment views (no DOM): what the trials table shows, the series and scales of
 * the metric chart, which actions an experiment allows. The shapes are PAI's experiment API
 * (docs/experiments.md).
 */

export interface TrialJob {
  name: string;
  url: string;
  state: string | null;
}

export interface Trial {
  id: string;
  sequence: number | null;
  state: string;
  parameters: unknown;
  intermediate: unknown[];
  final: unknown;
  startTime?: number | null;
  endTime?: number | null;
  job: TrialJob;
}

export interface Experiment {
  id: string;
  name: string;
  username: string;
  state: string;
  nniStatus: string | null;
  message: string;
  virtualCluster: string;
  createdTime: number;
  completedTime: number | null;
  maxTrialNumber: number;
  trialConcurrency: number;
  trialCounts: Record<string, number>;
  optimizeMode?: 'maximize' | 'minimize';
  bestFinal: number | null;
  ui: string | null;
  tuner?: { name: string; classArgs?: Record<string, unknown> };
  searchSpace?: Record<string, unknown>;
  trials?: Trial[];
}

/** Experiment states in which NNI still runs trials (the view keeps refreshing). */
export const ACTIVE_EXPERIMENT = new Set(['STARTING', 'RUNNING', 'STOPPING']);

export function canStop(e: Experiment): boolean {
  return e.state === 'RUNNING' || e.state === 'STARTING' || (e.ui !== null && e.state !== 'STOPPING');
}

export function canResume(e: Experiment): boolean {
  return e.state === 'STOPPED' || e.state === 'ERROR';
}

/** "4 of 6 trials done, 2 running": the progress line of the list and the detail. */
export function progressText(e: Experiment): string {
  const counts = e.trialCounts ?? {};
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const running = (counts.RUNNING ?? 0) + (counts.WAITING ?? 0);
  const done = total - running;
  let text = `${done} of ${e.maxTrialNumber} trials done`;
  if (running) {
    text += `, ${running} running`;
  }
  const failed = counts.FAILED ?? 0;
  if (failed) {
    text += `, ${failed} failed`;
  }
  return text;
}

/** A number the way a metric column shows it (6 significant digits); other values as JSON. */
export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) {
    return '';
  }
  if (typeof v === 'number') {
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  }
  if (typeof v === 'string') {
    return v;
  }
  return JSON.stringify(v);
}

/** The parameter names of the trials, in the order they first appear: the table's parameter columns. */
export function parameterKeys(trials: Trial[]): string[] {
  const keys: string[] = [];
  for (const t of trials) {
    if (t.parameters && typeof t.parameters === 'object' && !Array.isArray(t.parameters)) {
      for (const k of Object.keys(t.parameters as object)) {
        if (!keys.includes(k)) {
          keys.push(k);
        }
      }
    }
  }
  return keys;
}

export function parameter(t: Trial, key: string): unknown {
  return t.parameters && typeof t.parameters === 'object' ? (t.parameters as any)[key] : undefined;
}

export function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** The id of the trial with the best numeric final metric (maximize unless the tuner minimizes). */
export function bestTrial(trials: Trial[], mode: string = 'maximize'): string | null {
  let best: Trial | null = null;
  for (const t of trials) {
    if (isNumber(t.final) && (best === null || better(t.final, best.final as number, mode))) {
      best = t;
    }
  }
  return best?.id ?? null;
}

function better(a: number, b: number, mode: string): boolean {
  return mode === 'minimize' ? a < b : a > b;
}

export type SortKey = 'sequence' | 'state' | 'final' | `param:${string}`;

/** Trials sorted by a column; values that are not there (no final metric yet) always go last. */
export function sortTrials(trials: Trial[], key: SortKey, descending = false): Trial[] {
  const value = (t: Trial): unknown =>
    key === 'sequence' ? t.sequence : key === 'state' ? t.state : key === 'final' ? t.final : parameter(t, key.slice(6));
  const sign = descending ? -1 : 1;
  return [...trials].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    const ma = va === null || va === undefined;
    const mb = vb === null || vb === undefined;
    if (ma || mb) {
      return ma === mb ? 0 : ma ? 1 : -1;
    }
    if (isNumber(va) && isNumber(vb)) {
      return sign * (va - vb);
    }
    return sign * String(va).localeCompare(String(vb));
  });
}

export interface Point {
  x: number;
  y: number;
  label: string;
}

export interface Series {
  name: string;
  kind: 'dots' | 'line';
  points: Point[];
  /** an extra class for the series: which trial, or the best-so-far line */
  className?: string;
}

/**
 * The final-metric chart: each trial's final metric by its sequence number, and the best so far (the
 * line a tuner is meant to push up, or down when it minimizes).
 */
export function finalSeries(trials: Trial[], mode: string = 'maximize'): Series[] {
  const ordered = sortTrials(
    trials.filter(t => isNumber(t.final)),
    'sequence'
  );
  const finals: Point[] = ordered.map((t, i) => ({
    x: t.sequence ?? i,
    y: t.final as number,
    label: `trial ${t.id} (#${t.sequence ?? i}): ${fmtValue(t.final)}`
  }));
  const best: Point[] = [];
  for (const p of finals) {
    const prev = best.length ? best[best.length - 1].y : null;
    const y = prev === null || better(p.y, prev, mode) ? p.y : prev;
    best.push({ x: p.x, y, label: `best after #${p.x}: ${fmtValue(y)}` });
  }
  return [
    { name: 'Final metric', kind: 'dots', points: finals, className: 'pai-Series-final' },
    { name: 'Best so far', kind: 'line', points: best, className: 'pai-Series-best' }
  ];
}

/** The intermediate-metric chart: one line per trial, by report number. */
export function intermediateSeries(trials: Trial[]): Series[] {
  return sortTrials(trials, 'sequence')
    .filter(t => t.intermediate?.some(isNumber))
    .map(t => ({
      name: `trial ${t.id}`,
      kind: 'line' as const,
      className: `pai-Series-trial`,
      points: t.intermediate
        .map((v, i) => ({ x: i + 1, y: v as number, label: `trial ${t.id}, report ${i + 1}: ${fmtValue(v)}` }))
        .filter(p => isNumber(p.y))
    }));
}

/** A linear map from a data interval onto a pixel interval (a flat interval maps to the middle). */
export function scale(domain: [number, number], range: [number, number]): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  if (d1 === d0) {
    return () => (r0 + r1) / 2;
  }
  return v => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

/** The smallest and largest x and y of all points, or null when there is nothing to draw. */
export function extent(series: Series[]): { x: [number, number]; y: [number, number] } | null {
  const pts = series.flatMap(s => s.points);
  if (!pts.length) {
    return null;
  }
  const xs = pts.map(p => p.x);
  const ys = pts.map(p => p.y);
  return { x: [Math.min(...xs), Math.max(...xs)], y: [Math.min(...ys), Math.max(...ys)] };
}

/** About `count` round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart). */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    return [];
  }
  if (hi === lo) {
    return [lo];
  }
  const raw = (hi - lo) / Math.max(1, count);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map(m => m * pow).find(s => s >= raw) ?? 10 * pow;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}
