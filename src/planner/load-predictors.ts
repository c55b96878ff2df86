// Next-interval load predictors for one series (request rate, mean ISL or mean OSL): `constant` (the
// last value), `kalman` (a local linear trend) and `arima` (coefficients from the search thread, cheap
// recursion here). Every prediction is >= 0, and is the last value while data are too few or a fit failed.

import { arimaForecast, orderOf, type ArimaModel } from "./arima.js";
import type { ArimaSearchAnswer, ArimaSearcher } from "./arima-search.js";

export type LoadPredictorKind = "constant" | "arima" | "kalman";

export interface LoadPredictor {
  readonly kind: LoadPredictorKind;
  /** One interval's value; values that are not finite numbers >= 0 are ignored. */
  observe(value: number): void;
  /** The next interval's value; undefined before the first observation. */
  predict(): number | undefined;
  /** What `GET /v1/planner` shows about the predictor. */
  describe(): Record<string, unknown>;
}

function usable(v: number): boolean {
  return Number.isFinite(v) && v >= 0;
}

export class ConstantPredictor implements LoadPredictor {
  readonly kind = "constant";
  private last: number | undefined;

  observe(value: number): void {
    if (usable(value)) this.last = value;
  }

  predict(): number | undefined {
    return this.last;
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind };
  }
}

export const KALMAN_DEFAULTS = Object.freeze({
  /** Variance of the level's random walk, relative to the observation noise. */
  levelNoise: 0.1,
  /** Variance of the slope's random walk, relative to the observation noise. */
  slopeNoise: 0.01,
});

/**
 * Local linear trend: level[t] = level[t-1] + slope[t-1] + noise, slope[t] = slope[t-1] + noise,
 * y[t] = level[t] + noise. The noises are set relative to the observation noise, which makes the
 * filter's gain independent of the series' scale; it starts exactly from its first two values.
 */
export class KalmanPredictor implements LoadPredictor {
  readonly kind = "kalman";
  private readonly qLevel: number;
  private readonly qSlope: number;
  private first: number | undefined;
  private level = 0;
  private slope = 0;
  /** Covariance [[p00, p01], [p01, p11]] in units of the observation noise. */
  private p00 = 0;
  private p01 = 0;
  private p11 = 0;
  private n = 0;

  constructor(options: { levelNoise?: number; slopeNoise?: number } = {}) {
    this.qLevel = options.levelNoise ?? KALMAN_DEFAULTS.levelNoise;
    this.qSlope = options.slopeNoise ?? KALMAN_DEFAULTS.slopeNoise;
  }

  observe(y: number): void {
    if (!usable(y)) return;
    this.n++;
    if (this.n === 1) {
      this.first = y;
      return;
    }
    if (this.n === 2) {
      // Two noisy values fix level and slope: var(level) = 1, var(slope) = 2, cov = 1.
      this.level = y;
      this.slope = y - this.first!;
      this.p00 = 1;
      this.p01 = 1;
      this.p11 = 2;
      return;
    }
    // Predict: x = F x, P = F P F' + Q with F = [[1, 1], [0, 1]].
    const level = this.level + this.slope;
    const p00 = this.p00 + 2 * this.p01 + this.p11 + this.qLevel;
    const p01 = this.p01 + this.p11;
    const p11 = this.p11 + this.qSlope;
    // Update with y = level + noise (variance 1).
    const s = p00 + 1;
    const k0 = p00 / s;
    const k1 = p01 / s;
    const innovation = y - level;
    this.level = level + k0 * innovation;
    this.slope += k1 * innovation;
    this.p00 = (1 - k0) * p00;
    this.p01 = (1 - k0) * p01;
    this.p11 = p11 - k1 * p01;
  }

  predict(): number | undefined {
    if (this.n === 0) return undefined;
    if (this.n === 1) return this.first;
    return Math.max(0, this.level + this.slope);
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, level: this.level, slope: this.slope, observations: this.n };
  }
}

export const ARIMA_DEFAULTS = Object.freeze({
  /** A new order search every this many observations (the first once minPoints are in). */
  searchEvery: 5,
  /** Auto-ARIMA needs 20 points; until then the prediction is the last value. */
  minPoints: 20,
  /** Points kept (and fitted): four hours of 30 s intervals at most, which bounds a fit's cost. */
  maxHistory: 480,
  /** Candidate models are compared on one-step errors over this many latest points. */
  window: 30,
});

export interface ArimaPredictorOptions {
  searcher: ArimaSearcher;
  searchEvery?: number;
  minPoints?: number;
  maxHistory?: number;
  window?: number;
  /** Called with each search's answer (null: failed), e.g. to log it. */
  onSearch?: (answer: ArimaSearchAnswer | null) => void;
}

/**
 * ARIMA with the order search off the main thread: every `searchEvery` observations the history is
 * posted to the search thread; in between, and while a search runs, predictions come from the last
 * model's coefficients by the recursion (arima.ts), which is cheap enough for every interval.
 */
export class ArimaPredictor implements LoadPredictor {
  readonly kind = "arima";
  private readonly history: number[] = [];
  private model: ArimaModel | null = null;
  private sinceSearch = 0;
  private inFlight: Promise<void> | null = null;
  private searches = 0;
  private failedSearches = 0;
  private failedForecasts = 0;
  private lastAnswer: ArimaSearchAnswer | null = null;
  private readonly o: Required<Omit<ArimaPredictorOptions, "onSearch">> & Pick<ArimaPredictorOptions, "onSearch">;

  constructor(options: ArimaPredictorOptions) {
    this.o = { ...ARIMA_DEFAULTS, ...options };
  }

  observe(value: number): void {
    if (!usable(value)) return;
    this.history.push(value);
    if (this.history.length > this.o.maxHistory) this.history.shift();
    this.sinceSearch++;
    const due = this.model === null || this.sinceSearch >= this.o.searchEvery;
    if (due && this.inFlight === null && this.history.length >= this.o.minPoints) this.startSearch();
  }

  /**
   * The model's forecast; a forecast that is not a number >= 0 (of a series that is never negative)
   * is a failed fit: the last value is predicted, and the model is dropped so that the next
   * observation starts a new search.
   */
  predict(): number | undefined {
    const last = this.history[this.history.length - 1];
    if (last === undefined || this.model === null) return last;
    const f = arimaForecast(this.history, this.model);
    if (Number.isFinite(f) && f >= 0) return f;
    this.model = null;
    this.failedForecasts++;
    return last;
  }

  /** Resolves when no search is running (tests and benches wait on it to be deterministic). */
  async settled(): Promise<void> {
    while (this.inFlight !== null) await this.inFlight;
  }

  describe(): Record<string, unknown> {
    return {
      kind: this.kind,
      order: this.model === null ? null : orderOf(this.model),
      autoOrder: this.lastAnswer?.autoOrder ?? null,
      points: this.history.length,
      searches: this.searches,
      failedSearches: this.failedSearches,
      failedForecasts: this.failedForecasts,
      searching: this.inFlight !== null,
      lastSearchMs: this.lastAnswer?.elapsedMs ?? null,
    };
  }

  private startSearch(): void {
    this.sinceSearch = 0;
    this.searches++;
    this.inFlight = this.o.searcher([...this.history], this.o.window).then(
      (answer) => this.finish(answer),
      () => this.finish(null),
    );
  }

  private finish(answer: ArimaSearchAnswer | null): void {
    this.inFlight = null;
    if (answer === null) this.failedSearches++;
    else {
      this.model = answer.model;
      this.lastAnswer = answer;
    }
    this.o.onSearch?.(answer);
  }
}

/** rate, ISL and OSL predictors of one kind. */
export interface LoadForecaster {
  rate: LoadPredictor;
  isl: LoadPredictor;
  osl: LoadPredictor;
}

export function loadPredictor(kind: LoadPredictorKind, searcher: () => ArimaSearcher, arima: Omit<ArimaPredictorOptions, "searcher"> = {}): LoadPredictor {
  switch (kind) {
    case "constant":
      return new ConstantPredictor();
    case "kalman":
      return new KalmanPredictor();
    case "arima":
      return new ArimaPredictor({ ...arima, searcher: searcher() });
  }
}
