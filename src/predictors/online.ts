// The `online` predictor (SPEC.md §4): the profile's predictions, corrected per pod and quantity by an
// online quantile regression on the pod's state, learned from completion reports and, for pods that
// send none, from the deltas of their own vLLM latency histograms.
//
// The tracked quantile (p90 by default) is made of two parts: each pod's median correction, and one
// spread per hardware class from the median to the quantile. A per-pod p90 would rank pods by how
// noisy they are as much as by how fast: in the simulator's mismatch scenario it scaled the slow pods
// 2-4x (their latencies vary more under the load they get), steered nearly everything to the fast
// half and lost goodput; the median ranks them by speed, and the shared spread, the same for every
// pod of a class, moves every prediction of the class alike, so it decides which pairs meet an SLO
// without reordering them.

import type { Clock } from "../clock.js";
import { DEFAULTS } from "../config/schema.js";
import type { ScrapedHistogram } from "../pods/types.js";
import { POD_ROLES } from "../pods/types.js";
import { MAX_PREDICTION_MS, type ProfilePredictor } from "./profile.js";
import type { PodFeatures, PoolPredictions, Predictor, Quantity } from "./types.js";
import { QUANTITIES } from "./types.js";

/** One observed latency of one request on one pod, derived by the caller from a completion report. */
export interface LatencySample {
  address: string;
  quantity: Quantity;
  /** The pod's state when the request was dispatched. */
  features: PodFeatures;
  /** Uncached prompt tokens for prefill-ttft, the ISL for the decode quantities. */
  inputTokens: number;
  actualMs: number;
  /** A prefill-ttft sample of a decode pod prefilling locally: its compute alone, behind no prefill queue. */
  localPrefill?: boolean;
}

/**
 * The regression's features besides the intercept, each mapped onto roughly [0, 1] so one step size
 * fits all: the KV fraction, and log-scaled queued requests, running requests, input tokens and tokens
 * in flight (log1p(v) / log1p(reference), capped at 2).
 */
export const ONLINE_FEATURES = ["kvFraction", "queued", "running", "inputTokens", "tokensInFlight"] as const;
export type OnlineFeature = (typeof ONLINE_FEATURES)[number];
const FEATURES = ONLINE_FEATURES.length;

export interface OnlineOptions {
  /** The quantile the corrected prediction tracks: each pod's median plus its class's spread to this quantile. */
  quantile: number;
  /** Samples of a quantity a pod needs before its own model replaces its hardware class's. */
  minPodSamples: number;
  /** Histogram deltas are ignored for a pod and quantity that had a completion report this recently. */
  reportWindowMs: number;
  /** The correction factor is kept within [minFactor, maxFactor]. */
  minFactor: number;
  maxFactor: number;
  /** Step size of the first update; it then decays as eta0 / sqrt(1 + sum of squared intercept gradients). */
  eta0: number;
  /** The step never decays below this, so a model keeps following a pod that changes. */
  etaMin: number;
  /** Feature means average the last this-many samples (a plain mean until then). */
  meanWindow: number;
}

export const ONLINE_DEFAULTS: Readonly<OnlineOptions> = Object.freeze({
  quantile: DEFAULTS.predictors.online.quantile,
  minPodSamples: DEFAULTS.predictors.online.minPodSamples,
  reportWindowMs: 10_000,
  minFactor: 0.25,
  maxFactor: 8,
  eta0: 0.1,
  etaMin: 0.01,
  meanWindow: 1000,
});

/**
 * Why a sample or a histogram delta was not learned from. `address`, `quantity`, `features`, `tokens`:
 * missing, non-finite or negative inputs; `actual`: an actual that is not in (0, MAX_PREDICTION_MS] (0
 * means "not a sample", as in the latency-predictor service); `profile`: the pod names an unknown
 * profile; `baseline`: the profile predicts 0 or its cap, so there is no ratio to learn; `reported`: a
 * histogram delta for a pod that sends completion reports; `role`: a TTFT histogram of a decode pod (its
 * TTFT includes the remote prefill, so it is not the pod's prefill time); `reset`: a counter went
 * backwards; `histogram`: the two scrapes do not have the same buckets or are not cumulative histograms.
 */
export type IgnoreReason =
  | "address"
  | "quantity"
  | "features"
  | "tokens"
  | "actual"
  | "profile"
  | "baseline"
  | "reported"
  | "role"
  | "reset"
  | "histogram";

export interface ModelStats {
  samples: number;
  /** The median correction at the mean of the features the model has seen. */
  factor: number;
  /** Change of the log correction per unit of each (normalised, centred) feature. */
  slopes: Record<OnlineFeature, number>;
}

export interface PodQuantityStats {
  samples: number;
  /** Whether the pod's own model is in use (else its class's). */
  ownModel: boolean;
  /** The factor in use (median correction times the class's spread), at the mean features of the model in use; 1 before any sample. */
  factor: number;
  /** Time since the last completion report, null if none. */
  lastReportAgoMs: number | null;
}

export interface OnlineStats {
  classes: {
    hardwareClass: string;
    quantities: Partial<Record<Quantity, ModelStats>>;
    /** Per quantity, the factor from a pod's median to the tracked quantile, shared by the class. */
    spreads: Partial<Record<Quantity, number>>;
  }[];
  pods: { address: string; hardwareClass: string; quantities: Partial<Record<Quantity, PodQuantityStats>> }[];
  reportSamples: number;
  histogramSamples: number;
  ignored: Record<IgnoreReason, number>;
}

/** Bounds and step sizes a model needs, derived once from the options. */
interface Tuning {
  quantile: number;
  logMin: number;
  logMax: number;
  slopeMax: number;
  eta0: number;
  etaMin: number;
  meanWindow: number;
}

/**
 * A linear model of the log correction, z(x) = bias + slope · (x - mean), fitted by stochastic
 * gradient on the pinball loss of a quantile, with an AdaGrad step size floored at etaMin. The
 * features are centred on their running means so the intercept and the slopes learn independently;
 * moving the means moves the bias with them, so re-centring never changes a prediction.
 */
class QuantileModel {
  samples = 0;
  bias = 0;
  readonly slope = new Float64Array(FEATURES);
  readonly mean = new Float64Array(FEATURES);
  private squares = 0;

  logCorrection(x: Float64Array): number {
    let z = this.bias;
    for (let j = 0; j < FEATURES; j++) z += this.slope[j] * (x[j] - this.mean[j]);
    return z;
  }

  /** One step towards quantile q of residual r = log(actual / profile), clipped to the factor bounds. */
  update(x: Float64Array, r: number, q: number, t: Tuning): void {
    this.samples++;
    const k = 1 / Math.min(this.samples, t.meanWindow);
    for (let j = 0; j < FEATURES; j++) {
      const d = (x[j] - this.mean[j]) * k;
      this.mean[j] += d;
      this.bias += this.slope[j] * d;
    }
    const target = clamp(r, t.logMin, t.logMax);
    // Negative gradient of the pinball loss with respect to z. One step size for all weights, so a
    // feature that barely varies gets slow, not noisy, slope updates.
    const s = target < this.logCorrection(x) ? q - 1 : q;
    this.squares += s * s;
    const eta = stepSize(this.squares, t);
    this.bias = clamp(this.bias + eta * s, t.logMin, t.logMax);
    for (let j = 0; j < FEATURES; j++) {
      this.slope[j] = clamp(this.slope[j] + eta * s * (x[j] - this.mean[j]), -t.slopeMax, t.slopeMax);
    }
  }

  /** A new model that starts where this one is, with its own sample count and step sizes. */
  fork(): QuantileModel {
    const m = new QuantileModel();
    m.bias = this.bias;
    m.slope.set(this.slope);
    m.mean.set(this.mean);
    return m;
  }

  stats(t: Tuning): ModelStats {
    const slopes = {} as Record<OnlineFeature, number>;
    ONLINE_FEATURES.forEach((name, j) => (slopes[name] = this.slope[j]));
    return { samples: this.samples, factor: Math.exp(clamp(this.bias, t.logMin, t.logMax)), slopes };
  }
}

/**
 * The log distance from the median to the tracked quantile, learned by the same pinball-loss step on
 * the residuals of the medians in use (a scalar: the spread does not depend on the pod's state).
 */
class Spread {
  log = 0;
  private squares = 0;

  update(residual: number, t: Tuning): void {
    const s = residual < this.log ? t.quantile - 1 : t.quantile;
    this.squares += s * s;
    this.log = clamp(this.log + stepSize(this.squares, t) * s, t.logMin - t.logMax, t.logMax - t.logMin);
  }
}

/** A hardware class's models of one quantity: the pooled median, and the spread to the quantile. */
interface ClassModels {
  median: QuantileModel;
  spread: Spread;
}

/** The median ranks pods; the quantile in between is the spread's job. */
const MEDIAN = 0.5;

interface Target {
  state: PodState;
  classModels: ClassModels;
  podModel: QuantileModel;
  baselineMs: number;
  x: Float64Array;
}

interface PodState {
  hardwareClass: string;
  models: Partial<Record<Quantity, QuantileModel>>;
  lastReportMs: Partial<Record<Quantity, number>>;
}

export class OnlinePredictor implements Predictor {
  readonly kind = "online" as const;
  private readonly options: Readonly<OnlineOptions>;
  private readonly tuning: Tuning;
  private readonly classes = new Map<string, Partial<Record<Quantity, ClassModels>>>();
  private readonly podStates = new Map<string, PodState>();
  private readonly ignoredCounts: Record<IgnoreReason, number> = {
    address: 0,
    quantity: 0,
    features: 0,
    tokens: 0,
    actual: 0,
    profile: 0,
    baseline: 0,
    reported: 0,
    role: 0,
    reset: 0,
    histogram: 0,
  };
  private reportSamples = 0;
  private histogramSamples = 0;
  private readonly x = new Float64Array(FEATURES);

  constructor(
    private readonly profile: ProfilePredictor,
    private readonly clock: Clock,
    options: Partial<OnlineOptions> = {},
  ) {
    const o = { ...ONLINE_DEFAULTS, ...options };
    const problems = optionProblems(o);
    if (problems.length > 0) throw new RangeError(`online predictor: ${problems.join("; ")}`);
    this.options = Object.freeze(o);
    const logMin = Math.log(o.minFactor);
    const logMax = Math.log(o.maxFactor);
    this.tuning = {
      quantile: o.quantile,
      logMin,
      logMax,
      // No feature alone may swing the correction across more than the whole allowed range over [0, 1].
      slopeMax: logMax - logMin,
      eta0: o.eta0,
      etaMin: o.etaMin,
      meanWindow: o.meanWindow,
    };
  }

  fill(quantity: Quantity, pods: readonly PodFeatures[], out: PoolPredictions): void {
    this.profile.fill(quantity, pods, out);
    const n = out.pods;
    const grid = out.gridTokens;
    for (let i = 0; i < pods.length; i++) {
      const pod = pods[i];
      const model = this.correctionInUse(pod.address, hardwareClass(pod), quantity);
      // Queue and marginal effects are work of typical requests, so they take the correction at meanIsl.
      const typical = this.factorOf(model, pod, pod.meanIsl);
      if (quantity === "prefill-ttft") {
        for (let g = 0; g < grid.length; g++) {
          const f = this.factorOf(model, pod, grid[g]);
          // Never less for more tokens: the correction's slope in log tokens, fitted to a constant extra
          // delay, can fall faster than the profile's flat short-prompt segment rises.
          const floor = g === 0 ? 0 : out.prefillMs[(g - 1) * n + i];
          const localFloor = g === 0 ? 0 : out.localPrefillMs[(g - 1) * n + i];
          out.prefillMs[g * n + i] = Math.max(floor, scaled(out.prefillMs[g * n + i], f));
          out.prefillLoadMs[g * n + i] = out.prefillMs[g * n + i];
          out.localPrefillMs[g * n + i] = Math.max(localFloor, scaled(out.localPrefillMs[g * n + i], f));
        }
        out.prefillQueueMs[i] = scaled(out.prefillQueueMs[i], typical);
      } else if (quantity === "decode-ttft") {
        for (let g = 0; g < grid.length; g++) {
          out.decodeWaitMs[g * n + i] = scaled(out.decodeWaitMs[g * n + i], this.factorOf(model, pod, grid[g]));
        }
        out.decodeQueueMs[i] = scaled(out.decodeQueueMs[i], typical);
        out.waitPerRequestMs[i] = scaled(out.waitPerRequestMs[i], typical);
      } else {
        for (let g = 0; g < grid.length; g++) {
          out.tpotMs[g * n + i] = scaled(out.tpotMs[g * n + i], this.factorOf(model, pod, grid[g]));
        }
        out.tpotLoadMs[i] = scaled(out.tpotLoadMs[i], typical);
        out.tpotPerRequestMs[i] = scaled(out.tpotPerRequestMs[i], typical);
        out.tpotPerTokenMs[i] = scaled(out.tpotPerTokenMs[i], typical);
      }
    }
  }

  /** The factor this predictor applies to the profile's `quantity` for a request of `inputTokens` on `pod`. */
  correction(pod: PodFeatures, quantity: Quantity, inputTokens: number): number {
    return this.factorOf(this.correctionInUse(pod.address, hardwareClass(pod), quantity), pod, inputTokens);
  }

  /**
   * The profile's prediction of what a sample of `quantity` measures, before correction: for prefill-ttft
   * the queue ahead and the prefill compute (compute alone for a local prefill, which waits in no
   * prefill queue, whatever the pod's role), for decode-ttft the admission wait, for decode-tpot the
   * step time. Throws on an unknown profile.
   */
  baselineMs(pod: PodFeatures, quantity: Quantity, inputTokens: number, localPrefill = false): number {
    if (quantity === "prefill-ttft") {
      const queue = localPrefill || pod.role === "decode" ? 0 : this.profile.prefillQueueMs(pod);
      return queue + this.profile.prefillMs(pod, inputTokens);
    }
    if (quantity === "decode-ttft") return this.profile.decodeWaitMs(pod, inputTokens);
    return this.profile.stepMs(pod, inputTokens);
  }

  /**
   * Learns from one completion report: updates the pod's hardware class's model and the pod's own (used
   * once it has minPodSamples of the quantity). False, and counted, when the sample is not usable.
   */
  observe(sample: LatencySample): boolean {
    const target = sampleProblem(sample) ?? this.target(sample.address, sample.quantity, sample.features, sample.inputTokens, sample.localPrefill === true);
    if (typeof target === "string") return this.ignore(target);
    if (!this.learn(target, sample.actualMs, true)) return false;
    this.reportSamples++;
    target.state.lastReportMs[sample.quantity] = this.clock.nowMs();
    return true;
  }

  /** Whether a completion report of `quantity` (any quantity when absent) was learned for the pod within the report window. */
  reportsSeenRecently(address: string, quantity?: Quantity): boolean {
    const state = this.podStates.get(address);
    if (state === undefined) return false;
    const now = this.clock.nowMs();
    const recent = (q: Quantity) => {
      const at = state.lastReportMs[q];
      return at !== undefined && now - at < this.options.reportWindowMs;
    };
    return quantity === undefined ? QUANTITIES.some(recent) : recent(quantity);
  }

  /**
   * Learns from the observations between two scrapes of a pod's cumulative latency histogram
   * (vllm:time_to_first_token_seconds for prefill-ttft, vllm:time_per_output_token_seconds for
   * decode-tpot), unless the pod sent completion reports of that quantity recently. What is learned is
   * the interval's mean, the delta of `sum` over the delta of `count` (exact, whatever the buckets),
   * against the profile at the pool's mean ISL, as one sample of the pod's and its class's median models
   * (one step per interval: repeating it per observation made steps of the interval's size, and the
   * correction followed the last few intervals). The class's spread to the tracked quantile learns from
   * completion reports alone: an interval's spread is mostly its mix of request sizes (short and long
   * prompts in one TTFT histogram), not how far the pod strays from its prediction. Returns the number
   * of samples learned.
   */
  observeHistogramDelta(
    address: string,
    quantity: "prefill-ttft" | "decode-tpot",
    features: PodFeatures,
    inputTokens: number,
    previous: ScrapedHistogram,
    current: ScrapedHistogram,
  ): number {
    const delta = this.histogramProblem(address, quantity, features, inputTokens) ?? histogramDelta(previous, current);
    if (typeof delta === "string") {
      this.ignore(delta);
      return 0;
    }
    if (delta.count === 0) return 0;
    const target = this.target(address, quantity, features, inputTokens);
    if (typeof target === "string") {
      this.ignore(target);
      return 0;
    }
    const meanMs = (delta.sumSeconds / delta.count) * 1000;
    if (!(meanMs > 0 && meanMs <= MAX_PREDICTION_MS)) {
      this.ignore("actual");
      return 0;
    }
    this.learn(target, meanMs, false);
    this.histogramSamples++;
    return 1;
  }

  /** Drops what was learned about a pod (it left the pool); its class keeps what the pod taught it. */
  forget(address: string): void {
    this.podStates.delete(address);
  }

  /** Samples and factors per hardware class and per pod (one pod and its class when `address` is given). */
  stats(address?: string): OnlineStats {
    const now = this.clock.nowMs();
    const pods: OnlineStats["pods"] = [];
    for (const [podAddress, state] of this.podStates) {
      if (address !== undefined && podAddress !== address) continue;
      const quantities: Partial<Record<Quantity, PodQuantityStats>> = {};
      for (const q of QUANTITIES) {
        const own = state.models[q];
        if (own === undefined) continue;
        const inUse = this.correctionInUse(podAddress, state.hardwareClass, q);
        const at = state.lastReportMs[q];
        quantities[q] = {
          samples: own.samples,
          ownModel: inUse?.median === own,
          factor: inUse === null ? 1 : Math.exp(clamp(inUse.median.bias + inUse.spread.log, this.tuning.logMin, this.tuning.logMax)),
          lastReportAgoMs: at === undefined ? null : now - at,
        };
      }
      pods.push({ address: podAddress, hardwareClass: state.hardwareClass, quantities });
    }
    const wanted = address === undefined ? null : (this.podStates.get(address)?.hardwareClass ?? "");
    const classes: OnlineStats["classes"] = [];
    for (const [hardwareClass, models] of this.classes) {
      if (wanted !== null && hardwareClass !== wanted) continue;
      const quantities: Partial<Record<Quantity, ModelStats>> = {};
      const spreads: Partial<Record<Quantity, number>> = {};
      for (const q of QUANTITIES) {
        const model = models[q];
        if (model === undefined) continue;
        quantities[q] = model.median.stats(this.tuning);
        spreads[q] = Math.exp(model.spread.log);
      }
      classes.push({ hardwareClass, quantities, spreads });
    }
    return {
      classes,
      pods,
      reportSamples: this.reportSamples,
      histogramSamples: this.histogramSamples,
      ignored: { ...this.ignoredCounts },
    };
  }

  private ignore(reason: IgnoreReason): false {
    this.ignoredCounts[reason]++;
    return false;
  }

  private histogramProblem(address: string, quantity: Quantity, features: PodFeatures, inputTokens: number): IgnoreReason | null {
    if (quantity !== "prefill-ttft" && quantity !== "decode-tpot") return "quantity";
    const problem = sampleProblem({ address, quantity, features, inputTokens, actualMs: 1 });
    if (problem !== null) return problem;
    if (quantity === "prefill-ttft" && features.role === "decode") return "role";
    return this.reportsSeenRecently(address, quantity) ? "reported" : null;
  }

  /**
   * The models a validated sample of the pod updates (its class's, and its own, forked from the class's
   * on its first sample), with the profile's baseline and the features, or why it cannot be learned.
   */
  private target(address: string, quantity: Quantity, pod: PodFeatures, inputTokens: number, localPrefill = false): Target | IgnoreReason {
    let baselineMs: number;
    try {
      baselineMs = this.baselineMs(pod, quantity, inputTokens, localPrefill);
    } catch {
      return "profile";
    }
    // A saturated prediction (a pod that cannot admit) says nothing about how far off the profile is.
    if (!(baselineMs > 0 && baselineMs < MAX_PREDICTION_MS)) return "baseline";
    const hwClass = hardwareClass(pod);
    let classModels = this.classes.get(hwClass);
    if (classModels === undefined) this.classes.set(hwClass, (classModels = {}));
    const classModel = (classModels[quantity] ??= { median: new QuantileModel(), spread: new Spread() });
    let state = this.podStates.get(address);
    if (state === undefined || state.hardwareClass !== hwClass) {
      // A pod that changed profile or TP is a new pod as far as its corrections go.
      state = { hardwareClass: hwClass, models: {}, lastReportMs: {} };
      this.podStates.set(address, state);
    }
    const podModel = (state.models[quantity] ??= classModel.median.fork());
    const x = new Float64Array(FEATURES);
    featuresOf(pod, inputTokens, x);
    return { state, classModels: classModel, podModel, baselineMs, x };
  }

  /** One sample for the target's median models and, from a single request's report, its class's spread. */
  private learn(t: Target, actualMs: number, spread: boolean): boolean {
    if (!(actualMs > 0 && actualMs <= MAX_PREDICTION_MS)) return this.ignore("actual");
    const r = Math.log(actualMs / t.baselineMs);
    if (spread) {
      // The spread learns how far samples fall from the median that predicted them.
      const median = t.podModel.samples >= this.options.minPodSamples ? t.podModel : t.classModels.median;
      t.classModels.spread.update(r - clamp(median.logCorrection(t.x), this.tuning.logMin, this.tuning.logMax), this.tuning);
    }
    t.classModels.median.update(t.x, r, MEDIAN, this.tuning);
    t.podModel.update(t.x, r, MEDIAN, this.tuning);
    return true;
  }

  /** The pod's median model (its own once it has minPodSamples, else its class's) and its class's spread. */
  private correctionInUse(address: string, hwClass: string, quantity: Quantity): ClassModels | null {
    const models = this.classes.get(hwClass)?.[quantity];
    if (models === undefined) return null;
    const state = this.podStates.get(address);
    const own = state !== undefined && state.hardwareClass === hwClass ? state.models[quantity] : undefined;
    const median = own !== undefined && own.samples >= this.options.minPodSamples ? own : models.median;
    return { median, spread: models.spread };
  }

  private factorOf(model: ClassModels | null, pod: PodFeatures, inputTokens: number): number {
    if (model === null) return 1;
    featuresOf(pod, inputTokens, this.x);
    return Math.exp(clamp(model.median.logCorrection(this.x) + model.spread.log, this.tuning.logMin, this.tuning.logMax));
  }
}

/** Pods of one profile and TP share corrections until each has enough samples of its own. */
export function hardwareClass(pod: PodFeatures): string {
  return `${pod.profile}/tp${pod.tp}`;
}

function featuresOf(pod: PodFeatures, inputTokens: number, x: Float64Array): void {
  x[0] = pod.kvCapacityTokens > 0 ? clamp((pod.kvTokensUsed + pod.decodeTokensInFlight) / pod.kvCapacityTokens, 0, 1) : 0;
  x[1] = logScaled(pod.waiting + pod.prefillRequestsInFlight, 64);
  x[2] = logScaled(pod.running + pod.decodeRequestsInFlight, 256);
  x[3] = logScaled(inputTokens, 131_072);
  x[4] = logScaled(pod.prefillTokensInFlight + pod.decodeTokensInFlight, 131_072);
}

function logScaled(v: number, reference: number): number {
  return clamp(Math.log1p(v) / Math.log1p(reference), 0, 2);
}

/** Clamps to [lo, hi]; NaN becomes lo. */
function clamp(v: number, lo: number, hi: number): number {
  return v > hi ? hi : v >= lo ? v : lo;
}

function stepSize(sumOfSquares: number, t: Tuning): number {
  return Math.max(t.etaMin, t.eta0 / Math.sqrt(1 + sumOfSquares));
}

function scaled(ms: number, factor: number): number {
  return clamp(ms * factor, 0, MAX_PREDICTION_MS);
}

const COUNT_FIELDS = [
  "waiting",
  "running",
  "kvTokensUsed",
  "kvCapacityTokens",
  "prefillRequestsInFlight",
  "prefillTokensInFlight",
  "prefillMsInFlight",
  "localPrefillMsInFlight",
  "decodeRequestsInFlight",
  "decodeTokensInFlight",
  "meanIsl",
  "meanOsl",
] as const satisfies readonly (keyof PodFeatures)[];

function sampleProblem(s: LatencySample): IgnoreReason | null {
  if (s === null || typeof s !== "object") return "features";
  if (typeof s.address !== "string" || s.address === "") return "address";
  if (!QUANTITIES.includes(s.quantity)) return "quantity";
  const f = s.features;
  if (f === null || typeof f !== "object" || typeof f.profile !== "string" || !POD_ROLES.includes(f.role)) return "features";
  if (!(Number.isFinite(f.tp) && f.tp >= 1)) return "features";
  for (const key of COUNT_FIELDS) if (!(Number.isFinite(f[key]) && f[key] >= 0)) return "features";
  if (!(Number.isFinite(s.inputTokens) && s.inputTokens >= 0)) return "tokens";
  if (typeof s.actualMs !== "number" || !(s.actualMs > 0 && s.actualMs <= MAX_PREDICTION_MS)) return "actual";
  return null;
}

function optionProblems(o: OnlineOptions): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, what: string, value: number) => {
    if (!ok) problems.push(`${what}, got ${value}`);
  };
  check(o.quantile > 0 && o.quantile < 1, "quantile must be in (0, 1)", o.quantile);
  check(Number.isInteger(o.minPodSamples) && o.minPodSamples >= 1, "minPodSamples must be an integer >= 1", o.minPodSamples);
  check(o.reportWindowMs >= 0 && Number.isFinite(o.reportWindowMs), "reportWindowMs must be >= 0", o.reportWindowMs);
  check(o.minFactor > 0 && o.minFactor <= 1, "minFactor must be in (0, 1]", o.minFactor);
  check(o.maxFactor >= 1 && Number.isFinite(o.maxFactor), "maxFactor must be finite and >= 1", o.maxFactor);
  check(o.eta0 > 0 && Number.isFinite(o.eta0), "eta0 must be > 0", o.eta0);
  check(o.etaMin > 0 && o.etaMin <= o.eta0, "etaMin must be in (0, eta0]", o.etaMin);
  check(Number.isInteger(o.meanWindow) && o.meanWindow >= 1, "meanWindow must be an integer >= 1", o.meanWindow);
  return problems;
}

/** The observations between two scrapes: how many, and the sum of their values in seconds. */
interface HistogramDelta {
  count: number;
  sumSeconds: number;
}

/** The interval between two scrapes of one histogram series, or why it is not to be trusted. */
function histogramDelta(previous: ScrapedHistogram, current: ScrapedHistogram): HistogramDelta | "reset" | "histogram" {
  if (!isHistogram(previous) || !isHistogram(current)) return "histogram";
  const le = current.le;
  if (previous.le.length !== le.length || previous.le.some((b, k) => b !== le[k])) return "histogram";
  if (current.count < previous.count || current.sum < previous.sum) return "reset";
  let below = 0;
  for (let k = 0; k < le.length; k++) {
    const cumulative = current.counts[k] - previous.counts[k];
    if (cumulative < 0) return "reset";
    // A bucket whose cumulative delta shrinks means the two scrapes are not of one series.
    if (cumulative < below) return "histogram";
    below = cumulative;
  }
  // Observations above a last finite bound are in `count` only.
  const count = current.count - previous.count;
  if (count < below) return "histogram";
  return { count, sumSeconds: current.sum - previous.sum };
}

function isHistogram(h: ScrapedHistogram): boolean {
  if (h === null || typeof h !== "object" || !Array.isArray(h.le) || !Array.isArray(h.counts)) return false;
  if (h.le.length === 0 || h.le.length !== h.counts.length) return false;
  if (!(Number.isFinite(h.count) && h.count >= 0) || !(Number.isFinite(h.sum) && h.sum >= 0)) return false;
  for (let k = 0; k < h.le.length; k++) {
    const bound = h.le[k];
    const count = h.counts[k];
    if (typeof bound !== "number" || !(bound > 0) || (k > 0 && !(bound > h.le[k - 1]))) return false;
    if (bound === Infinity && k !== h.le.length - 1) return false;
    if (typeof count !== "number" || !(Number.isFinite(count) && count >= 0)) return false;
  }
  return true;
}
