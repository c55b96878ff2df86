// ARIMA models as the planner uses them: the order search (arima-thread.ts) fits models with the `arima`
// library and picks one; between searches the main thread forecasts with the picked model's
// coefficients by the ARIMA recursion below, which costs microseconds (no fit on the main thread).

/**
 * An ARIMA(p, d, q) model in the library's (ctsa's) convention, on the series differenced d times:
 * w[t] - mean = sum_i phi[i] (w[t-1-i] - mean) + a[t] - sum_j theta[j] a[t-1-j].
 */
export interface ArimaModel {
  p: number;
  d: number;
  q: number;
  phi: number[];
  theta: number[];
  mean: number;
}

export type Order = readonly [p: number, d: number, q: number];

/** ARIMA(0,1,0): tomorrow is today. What the search keeps when no fitted model beats it. */
export const RANDOM_WALK: Readonly<ArimaModel> = Object.freeze({ p: 0, d: 1, q: 0, phi: [], theta: [], mean: 0 });

/** Orders fitted next to the one the library's auto-ARIMA picks: low orders that cover level, trend and a cycle. */
export const CANDIDATE_ORDERS: readonly Order[] = [
  [1, 0, 0],
  [2, 0, 0],
  [1, 0, 1],
  [2, 0, 1],
  [1, 1, 0],
  [0, 1, 1],
];

export function orderOf(m: ArimaModel): string {
  return `(${m.p},${m.d},${m.q})`;
}

/**
 * One-step-ahead forecast of `series` (at least d + 1 points): residuals are rebuilt by the recursion
 * from zero (conditional sum of squares), which for an invertible model forgets its start quickly.
 */
export function arimaForecast(series: ArrayLike<number>, m: ArimaModel, length = series.length): number {
  const w = new Float64Array(length);
  for (let i = 0; i < length; i++) w[i] = series[i]!;
  // Difference in place: after k rounds w[k..] holds the k-times differenced series.
  const lasts = new Float64Array(m.d);
  for (let k = 0; k < m.d; k++) {
    lasts[k] = w[length - 1]!;
    for (let i = length - 1; i > k; i--) w[i] = w[i]! - w[i - 1]!;
  }
  const start = m.d;
  const n = length - start;
  const e = new Float64Array(n);
  const predict = (t: number): number => {
    let f = m.mean;
    for (let i = 0; i < m.p; i++) {
      const j = t - 1 - i;
      if (j >= 0) f += m.phi[i]! * (w[start + j]! - m.mean);
    }
    for (let i = 0; i < m.q; i++) {
      const j = t - 1 - i;
      if (j >= 0) f -= m.theta[i]! * e[j]!;
    }
    return f;
  };
  for (let t = 0; t < n; t++) e[t] = w[start + t]! - predict(t);
  let f = predict(n);
  for (let k = m.d - 1; k >= 0; k--) f += lasts[k]!;
  return f;
}

/** Mean squared one-step error of `m` over the last `window` points of `series`, each forecast from the points before it. */
export function oneStepMse(series: ArrayLike<number>, m: ArimaModel, window: number): number {
  const start = Math.max(m.d + 1, series.length - window);
  let sum = 0;
  let n = 0;
  for (let t = start; t < series.length; t++) {
    const err = arimaForecast(series, m, t) - series[t]!;
    sum += err * err;
    n++;
  }
  return n > 0 ? sum / n : Infinity;
}

const ORDER_RE = /Order\s*:\s*\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)\s*\*\s*\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)/;

/** The non-seasonal order in a summary the library prints when `verbose` is on ("ARIMA Seasonal Order : ( p, d, q) * (P, D, Q)"). */
export function parseOrder(text: string): Order | null {
  const m = ORDER_RE.exec(text);
  if (m === null) return null;
  const [p, d, q, P, D, Q] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return P + D + Q > 0 ? null : [p, d, q];
}

/**
 * The fitted model in such a summary (the order, then AR1.., MA1.., MEAN and TREND lines); null for a
 * seasonal model, a trend term (the recursion has none) or a coefficient that is not a finite number.
 */
export function parseArimaSummary(text: string): ArimaModel | null {
  const order = parseOrder(text);
  if (order === null) return null;
  const [p, d, q] = order;
  const coef = new Map<string, number>();
  const from = text.search(ORDER_RE);
  for (const m of text.slice(from).matchAll(/^\s*(AR\d+|MA\d+|MEAN|TREND)\s+(\S+)/gm)) coef.set(m[1]!, Number(m[2]));
  const phi = Array.from({ length: p }, (_, i) => coef.get(`AR${i + 1}`) ?? NaN);
  const theta = Array.from({ length: q }, (_, i) => coef.get(`MA${i + 1}`) ?? NaN);
  const mean = coef.get("MEAN") ?? 0;
  const trend = coef.get("TREND") ?? 0;
  if (![...phi, ...theta, mean, trend].every(Number.isFinite) || trend !== 0) return null;
  return { p, d, q, phi, theta, mean };
}

export interface FittedCandidate {
  model: ArimaModel;
  /** The library's own one-step forecast after the fit. */
  libraryForecast: number;
}

export interface ModelChoice {
  model: ArimaModel;
  mse: number;
  randomWalkMse: number;
  /**
   * Candidates refused: not stationary or not invertible, or whose recursion disagreed with the
   * library's forecast (a misread fit).
   */
  rejected: number;
}

/**
 * Whether every root of 1 - c[0] z - c[1] z^2 - … lies outside the unit circle: for AR coefficients,
 * a stationary model; for MA ones (this convention's sign), an invertible one. The step-down
 * (Schur-Cohn) recursion turns the coefficients into partial autocorrelations, each of which must be
 * inside (-1, 1).
 */
export function rootsOutsideUnitCircle(c: readonly number[]): boolean {
  let a = [...c];
  for (let k = a.length; k >= 1; k--) {
    const r = a[k - 1]!;
    if (!(Math.abs(r) < 1)) return false;
    const scale = 1 - r * r;
    a = Array.from({ length: k - 1 }, (_, j) => (a[j]! + r * a[k - 2 - j]!) / scale);
  }
  return true;
}

/**
 * A model the recursion can be trusted with: a stationary AR part (otherwise a level shift sends the
 * forecast far past the series, often below zero) and an invertible MA part (otherwise the residuals
 * rebuilt from zero grow instead of fading).
 */
export function wellBehaved(m: ArimaModel): boolean {
  return rootsOutsideUnitCircle(m.phi) && rootsOutsideUnitCircle(m.theta);
}

function spread(series: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < series.length; i++) mean += series[i]!;
  mean /= series.length;
  let v = 0;
  for (let i = 0; i < series.length; i++) v += (series[i]! - mean) ** 2;
  return Math.sqrt(v / series.length);
}

/**
 * The candidate with the smallest one-step error over the last `window` points, if it beats the
 * random walk; a candidate is kept only if it is stationary and invertible (wellBehaved) and the
 * recursion reproduces the library's forecast within `tolerance` x the series' standard deviation, so
 * the coefficients the main thread uses are the ones fitted.
 */
export function chooseModel(series: ArrayLike<number>, candidates: readonly FittedCandidate[], window: number, tolerance = 0.05): ModelChoice {
  const last = series[series.length - 1]!;
  const allowed = tolerance * spread(series) + 1e-6 * Math.max(1, Math.abs(last));
  const randomWalkMse = oneStepMse(series, RANDOM_WALK, window);
  let best: ArimaModel = RANDOM_WALK;
  let bestMse = randomWalkMse;
  let rejected = 0;
  for (const c of candidates) {
    const ours = wellBehaved(c.model) ? arimaForecast(series, c.model) : NaN;
    if (!Number.isFinite(ours) || !(Math.abs(ours - c.libraryForecast) <= allowed)) {
      rejected++;
      continue;
    }
    const mse = oneStepMse(series, c.model, window);
    if (mse < bestMse) {
      best = c.model;
      bestMse = mse;
    }
  }
  return { model: best, mse: bestMse, randomWalkMse, rejected };
}
