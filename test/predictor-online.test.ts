// The `online` predictor (SPEC.md §4): the profile corrected per pod by an online quantile regression,
// pooled per hardware class, learned from completion reports and from vLLM histogram deltas.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import type { ScrapedHistogram } from "../src/pods/types.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { ONLINE_DEFAULTS, OnlinePredictor, type LatencySample, type OnlineOptions } from "../src/predictors/online.js";
import { MAX_PREDICTION_MS, ProfilePredictor } from "../src/predictors/profile.js";
import { allocatePredictions, logGrid, QUANTITIES, type PodFeatures, type PoolPredictions, type Quantity } from "../src/predictors/types.js";
import { podFeatures } from "./fixtures/features.js";

const H100 = "h100";
const profile = new ProfilePredictor({ profiles: new Map([[H100, LatencyProfile.shipped(H100)]]), tpEfficiency: 0.85 });
const GRID = logGrid(4, 128, 16_384);
/** z of the standard normal's 0.9 quantile. */
const Z90 = 1.2815515655446004;

function pod(over: Partial<PodFeatures> = {}): PodFeatures {
  return podFeatures(H100, over);
}

function online(options: Partial<OnlineOptions> = {}, clock = new ManualClock()): OnlinePredictor {
  return new OnlinePredictor(profile, clock, options);
}

/** mulberry32: a small seeded generator, so every run sees the same samples. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** A pod of the given role in a random but plausible state, and a request size. */
function randomState(random: () => number, role: PodFeatures["role"], address = "10.0.0.1:8000") {
  const capacity = 400_000;
  const features = pod({
    address,
    role,
    waiting: Math.floor(random() * 6),
    running: Math.floor(random() * 48),
    kvTokensUsed: Math.floor(random() * 0.9 * capacity),
    kvCapacityTokens: capacity,
    prefillRequestsInFlight: Math.floor(random() * 3),
    prefillTokensInFlight: Math.floor(random() * 6000),
    decodeRequestsInFlight: Math.floor(random() * 4),
    decodeTokensInFlight: Math.floor(random() * 8000),
  });
  if (role !== "decode") features.prefillMsInFlight = features.prefillRequestsInFlight * profile.prefillMs(features, features.meanIsl);
  const inputTokens = Math.round(128 * Math.pow(64, random()));
  return { features, inputTokens };
}

/** The profile's prediction of what a sample of `quantity` measures (the truth's baseline here). */
function profileMs(quantity: Quantity, p: PodFeatures, tokens: number): number {
  if (quantity === "prefill-ttft") return (p.role === "decode" ? 0 : profile.prefillQueueMs(p)) + profile.prefillMs(p, tokens);
  if (quantity === "decode-ttft") return profile.decodeWaitMs(p, tokens);
  return profile.stepMs(p, tokens);
}

function kvFraction(p: PodFeatures): number {
  return (p.kvTokensUsed + p.decodeTokensInFlight) / p.kvCapacityTokens;
}

/** Samples of `quantity` on pods of `role` whose actual is profile x exp(logFactor(pod) + sigma N(0, 1)). */
function* samples(
  random: () => number,
  quantity: Quantity,
  role: PodFeatures["role"],
  sigma: number,
  logFactor: (p: PodFeatures) => number,
  address?: string,
): Generator<LatencySample> {
  for (;;) {
    const { features, inputTokens } = randomState(random, role, address);
    const actualMs = profileMs(quantity, features, inputTokens) * Math.exp(logFactor(features) + sigma * normal(random));
    yield { address: features.address, quantity, features, inputTokens, actualMs };
  }
}

function take<T>(gen: Generator<T>, n: number): T[] {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(gen.next().value as T);
  return out;
}

/** Fraction of samples at or below the online prediction, without learning from them. */
function coverage(o: OnlinePredictor, batch: LatencySample[]): number {
  let below = 0;
  for (const s of batch) {
    const predicted = o.baselineMs(s.features, s.quantity, s.inputTokens) * o.correction(s.features, s.quantity, s.inputTokens);
    if (s.actualMs <= predicted) below++;
  }
  return below / batch.length;
}

function expectSane(out: PoolPredictions): void {
  for (const [name, values] of Object.entries(out)) {
    if (!(values instanceof Float64Array) || name === "gridTokens") continue;
    for (const v of values) {
      expect(Number.isFinite(v), `${name} has ${v}`).toBe(true);
      expect(v, name).toBeGreaterThanOrEqual(0);
    }
  }
}

describe("convergence to the p90", () => {
  // Tolerances. Once the step has decayed to etaMin = 0.01, an SGD quantile tracker wanders about the
  // quantile with a spread of about sqrt(eta q (1 - q) / (2 f)) in log space, f the density of the log
  // noise at its p90 (0.70 for sigma = 0.25): 0.025, so 3 spreads is 8%, and the feature slopes add a
  // little away from the mean state: 10%. A frozen model's coverage of fresh samples is off by about f
  // times that spread (0.018) plus sampling (0.005): ±0.05. The coverage of samples predicted before
  // learning from them is much tighter: the intercept's steps telescope, so it is q minus (change of the
  // intercept) / (eta n), about 0.05 / (0.01 x 4800) = 0.001 here: ±0.01. (Over 30 seeds the worst cases
  // were 6.5%, ±0.037 and ±0.002.)
  const SIGMA = 0.25;
  const TRUE_P90 = 1.5 * Math.exp(Z90 * SIGMA);
  const CHECKPOINTS = [100, 400, 1600, 6400];

  it("learns actual = 1.5 x profile x lognormal noise: the corrected prediction is the true p90 and covers 90% of fresh samples", () => {
    const o = online();
    const gen = samples(rng(1), "prefill-ttft", "prefill", SIGMA, () => Math.log(1.5));
    const fresh = take(samples(rng(2), "prefill-ttft", "prefill", SIGMA, () => Math.log(1.5)), 4000);
    const worstErrors: number[] = [];
    const coverages: number[] = [];
    let predictedBefore = 0;
    let coveredBefore = 0;
    for (const n of CHECKPOINTS) {
      for (const s of take(gen, n - o.stats().reportSamples)) {
        if (n === 6400) {
          predictedBefore++;
          if (s.actualMs <= o.baselineMs(s.features, s.quantity, s.inputTokens) * o.correction(s.features, s.quantity, s.inputTokens)) coveredBefore++;
        }
        expect(o.observe(s)).toBe(true);
      }
      const factors = fresh.slice(0, 200).map((s) => o.correction(s.features, s.quantity, s.inputTokens));
      worstErrors.push(Math.max(...factors.map((f) => Math.abs(f / TRUE_P90 - 1))));
      coverages.push(coverage(o, fresh));
    }
    const cls = o.stats().classes[0];
    const median = cls.quantities["prefill-ttft"]!.factor;
    const atMean = median * cls.spreads["prefill-ttft"]!;
    expect(Math.abs(median / 1.5 - 1)).toBeLessThan(0.08);
    expect(Math.abs(atMean / TRUE_P90 - 1)).toBeLessThan(0.08);
    expect(worstErrors[3]).toBeLessThan(0.1);
    expect(Math.abs(coverages[3] - 0.9)).toBeLessThan(0.05);
    expect(Math.abs(coveredBefore / predictedBefore - 0.9)).toBeLessThan(0.01);
    expect(worstErrors[2]).toBeLessThan(0.15);
    console.info(
      `online p90 convergence (sigma ${SIGMA}, true factor ${TRUE_P90.toFixed(3)}, worst error over 200 fresh states, coverage of 4000): ` +
        CHECKPOINTS.map((n, k) => `n=${n} ${(worstErrors[k] * 100).toFixed(1)}% ${coverages[k].toFixed(3)}`).join(", ") +
        `; factor at the mean state ${atMean.toFixed(3)}; coverage of samples 1601-6400 before learning them ${(coveredBefore / predictedBefore).toFixed(4)}`,
    );
  });

  it("learns a dependence on the KV fraction: the factor follows exp(0.8 kv) at the p90", () => {
    const o = online();
    const logFactor = (p: PodFeatures) => 0.8 * kvFraction(p) - 0.2;
    for (const s of take(samples(rng(3), "decode-tpot", "decode", SIGMA, logFactor), 6400)) o.observe(s);
    const fresh = take(samples(rng(4), "decode-tpot", "decode", SIGMA, logFactor), 4000);
    expect(Math.abs(coverage(o, fresh) - 0.9)).toBeLessThan(0.05);
    const at = (kv: number) => o.correction(pod({ role: "decode", running: 24, waiting: 2, kvTokensUsed: kv * 400_000 }), "decode-tpot", 1024);
    const truth = (kv: number) => Math.exp(0.8 * kv - 0.2 + Z90 * SIGMA);
    for (const kv of [0.1, 0.45, 0.8]) expect(Math.abs(at(kv) / truth(kv) - 1), `kv ${kv}`).toBeLessThan(0.12);
    expect(at(0.8)).toBeGreaterThan(at(0.1) * 1.4);
    expect(o.stats().classes[0].quantities["decode-tpot"]!.slopes.kvFraction).toBeGreaterThan(0.5);
  });

  it("keeps the correction within x0.25..x8 whatever the samples say", () => {
    const o = online();
    const state = pod({ role: "prefill" });
    for (let i = 0; i < 500; i++) o.observe({ address: state.address, quantity: "prefill-ttft", features: state, inputTokens: 512, actualMs: 1e6 });
    expect(o.correction(state, "prefill-ttft", 512)).toBeCloseTo(8, 9);
    // Down is (1 - q) / q = 9 times slower than up at the p90: a sample above the quantile weighs 9 below it.
    for (let i = 0; i < 5000; i++) o.observe({ address: state.address, quantity: "prefill-ttft", features: state, inputTokens: 512, actualMs: 1e-3 });
    expect(o.correction(state, "prefill-ttft", 512)).toBeCloseTo(0.25, 2);
  });
});

describe("per-pod learning", () => {
  const SIGMA = 0.2;

  it("tells a fast pod from a slow one of the same class, after pooling them until minPodSamples", () => {
    const o = online({ minPodSamples: 50 });
    const fast = samples(rng(5), "decode-tpot", "decode", SIGMA, () => Math.log(0.7), "fast:8000");
    const slow = samples(rng(6), "decode-tpot", "decode", SIGMA, () => Math.log(1.6), "slow:8000");
    const probe = pod({ role: "decode", running: 16, kvTokensUsed: 100_000 });
    const factorOf = (address: string) => o.correction({ ...probe, address }, "decode-tpot", 1024);
    for (let i = 0; i < 49; i++) {
      o.observe(fast.next().value as LatencySample);
      o.observe(slow.next().value as LatencySample);
    }
    // Both still use the pooled class correction, somewhere between the two pods.
    expect(factorOf("fast:8000")).toBe(factorOf("slow:8000"));
    expect(factorOf("fast:8000")).toBe(factorOf("new:8000"));
    expect(o.stats("fast:8000").pods[0].quantities["decode-tpot"]).toMatchObject({ samples: 49, ownModel: false });
    for (let i = 0; i < 3000; i++) {
      o.observe(fast.next().value as LatencySample);
      o.observe(slow.next().value as LatencySample);
    }
    const stats = o.stats();
    expect(stats.pods.map((p) => p.quantities["decode-tpot"]!.ownModel)).toEqual([true, true]);
    const spread = Math.exp(Z90 * SIGMA);
    expect(Math.abs(factorOf("fast:8000") / (0.7 * spread) - 1)).toBeLessThan(0.1);
    expect(Math.abs(factorOf("slow:8000") / (1.6 * spread) - 1)).toBeLessThan(0.1);
    // The class pools both: a pod it has not seen gets a correction between them.
    expect(factorOf("new:8000")).toBeGreaterThan(factorOf("fast:8000"));
    expect(factorOf("new:8000")).toBeLessThanOrEqual(factorOf("slow:8000") * 1.05);
  });

  it("ranks pods by their medians: a fast, noisy pod stays ahead of a slow, steady one", () => {
    const o = online({ minPodSamples: 50 });
    // Per-pod p90s would be 1.0 x e^(1.28 x 0.6) = 2.16 and 1.6 x e^(1.28 x 0.1) = 1.82: the slow pod first.
    const noisy = samples(rng(9), "decode-tpot", "decode", 0.6, () => 0, "noisy:8000");
    const steady = samples(rng(10), "decode-tpot", "decode", 0.1, () => Math.log(1.6), "steady:8000");
    for (let i = 0; i < 3000; i++) {
      o.observe(noisy.next().value as LatencySample);
      o.observe(steady.next().value as LatencySample);
    }
    const probe = pod({ role: "decode", running: 16, kvTokensUsed: 100_000 });
    const factorOf = (address: string) => o.correction({ ...probe, address }, "decode-tpot", 1024);
    expect(factorOf("noisy:8000")).toBeLessThan(factorOf("steady:8000") / 1.3);
    // Both carry the class's one spread to the p90 of the pooled residuals, well above 1.
    const spread = o.stats().classes[0].spreads["decode-tpot"]!;
    expect(spread).toBeGreaterThan(1.2);
    const medians = o.stats().pods.map((p) => p.quantities["decode-tpot"]!.factor / spread);
    expect(Math.abs(medians[0] / 1.0 - 1)).toBeLessThan(0.1);
    expect(Math.abs(medians[1] / 1.6 - 1)).toBeLessThan(0.1);
  });

  it("starts a new pod of a known class from the class's correction, and keeps classes apart", () => {
    const o = online({ minPodSamples: 50 });
    for (const s of take(samples(rng(7), "prefill-ttft", "prefill", SIGMA, () => Math.log(2), "a:8000"), 2000)) o.observe(s);
    const newcomer = pod({ address: "b:8000", role: "prefill" });
    expect(o.correction(newcomer, "prefill-ttft", 1024)).toBeGreaterThan(1.8);
    // A few samples of its own do not move it off the class correction yet.
    const before = o.correction(newcomer, "prefill-ttft", 1024);
    for (const s of take(samples(rng(8), "prefill-ttft", "prefill", SIGMA, () => Math.log(2), "b:8000"), 10)) o.observe(s);
    expect(o.stats("b:8000").pods[0].quantities["prefill-ttft"]!.ownModel).toBe(false);
    expect(Math.abs(o.correction(newcomer, "prefill-ttft", 1024) / before - 1)).toBeLessThan(0.05);
    // Another TP is another class, and another quantity another model: both still uncorrected.
    expect(o.correction({ ...newcomer, tp: 2 }, "prefill-ttft", 1024)).toBe(1);
    expect(o.correction(newcomer, "decode-tpot", 1024)).toBe(1);
    o.forget("a:8000");
    expect(o.stats("a:8000").pods).toEqual([]);
  });
});

describe("fill", () => {
  it("multiplies every entry of the quantity by the pod's correction at that grid point, and nothing else", () => {
    const o = online({ minPodSamples: 20 });
    const pods = [pod({ address: "p:1", role: "prefill", waiting: 3, running: 1 }), pod({ address: "d:1", role: "decode", running: 30, kvTokensUsed: 300_000 })];
    for (const q of QUANTITIES) {
      const role = q === "prefill-ttft" ? "prefill" : "decode";
      for (const s of take(samples(rng(9), q, role, 0.1, () => Math.log(1.7), pods[role === "prefill" ? 0 : 1].address), 300)) o.observe(s);
    }
    for (const q of QUANTITIES) {
      const base = allocatePredictions(2, GRID);
      const corrected = allocatePredictions(2, GRID);
      profile.fill(q, pods, base);
      o.fill(q, pods, corrected);
      const curves: Record<Quantity, (keyof PoolPredictions)[]> = {
        "prefill-ttft": ["prefillMs", "prefillLoadMs", "localPrefillMs"],
        "decode-ttft": ["decodeWaitMs"],
        "decode-tpot": ["tpotMs"],
      };
      const perPod: Record<Quantity, (keyof PoolPredictions)[]> = {
        "prefill-ttft": ["prefillQueueMs"],
        "decode-ttft": ["decodeQueueMs", "waitPerRequestMs"],
        "decode-tpot": ["tpotLoadMs", "tpotPerRequestMs", "tpotPerTokenMs"],
      };
      for (let i = 0; i < 2; i++) {
        for (const name of curves[q]) {
          for (let g = 0; g < GRID.length; g++) {
            const expected = (base[name] as Float64Array)[g * 2 + i] * o.correction(pods[i], q, GRID[g]);
            expect((corrected[name] as Float64Array)[g * 2 + i]).toBeCloseTo(expected, 9);
          }
        }
        for (const name of perPod[q]) {
          const expected = (base[name] as Float64Array)[i] * o.correction(pods[i], q, pods[i].meanIsl);
          expect((corrected[name] as Float64Array)[i]).toBeCloseTo(expected, 9);
        }
      }
      for (const name of Object.keys(base) as (keyof PoolPredictions)[]) {
        if (!curves[q].includes(name) && !perPod[q].includes(name)) expect(corrected[name], name).toEqual(base[name]);
      }
      expect(o.correction(pods[q === "prefill-ttft" ? 0 : 1], q, 1024)).toBeGreaterThan(1.5);
    }
  });

  it("never predicts less prefill time for more tokens, even when a constant extra delay teaches it a falling slope", () => {
    const o = online();
    const p = pod({ address: "p:1", role: "prefill" });
    const random = rng(5);
    // Actual = profile + 20 ms whatever the prompt: in log tokens the factor falls, and on the
    // profile's flat short-prompt segment a falling factor would make the curve fall too.
    for (let k = 0; k < 5000; k++) {
      const tokens = Math.round(Math.exp(Math.log(16) + random() * (Math.log(32_768) - Math.log(16))));
      o.observe({ address: p.address, quantity: "prefill-ttft", features: p, inputTokens: tokens, actualMs: profile.prefillMs(p, tokens) + 20 });
    }
    const grid = logGrid(12, 16, 32_768);
    const out = allocatePredictions(1, grid);
    o.fill("prefill-ttft", [p], out);
    expect(o.correction(p, "prefill-ttft", 16)).toBeGreaterThan(o.correction(p, "prefill-ttft", 128));
    for (let g = 1; g < grid.length; g++) {
      expect(out.prefillMs[g], `${grid[g]} tokens`).toBeGreaterThanOrEqual(out.prefillMs[g - 1]);
      expect(out.localPrefillMs[g], `${grid[g]} tokens, local`).toBeGreaterThanOrEqual(out.localPrefillMs[g - 1]);
    }
  });

  it("is the profile's fill for pods it knows nothing about", () => {
    const o = online();
    const pods = [pod({ address: "x:1", running: 8 })];
    for (const q of QUANTITIES) {
      const base = allocatePredictions(1, GRID);
      const corrected = allocatePredictions(1, GRID);
      profile.fill(q, pods, base);
      o.fill(q, pods, corrected);
      expect(corrected).toEqual(base);
    }
  });
});

/** vLLM's TPOT buckets (seconds), +Inf last. */
const TPOT_LE = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, Infinity];
/** vLLM's TTFT buckets (seconds). */
const TTFT_LE = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, Infinity];

/** A cumulative histogram from per-bucket counts (seconds, as vLLM reports), each observation at its bucket's upper bound. */
function histogram(perBucket: number[], le = TPOT_LE): ScrapedHistogram {
  const counts: number[] = [];
  let total = 0;
  let sum = 0;
  perBucket.forEach((c, k) => {
    total += c;
    counts.push(total);
    sum += c * (Number.isFinite(le[k]) ? le[k] : le[k - 1]);
  });
  return { le, counts, sum, count: total };
}

/** A cumulative histogram after `seconds` more observations than `h` (vLLM's rule: le is inclusive). */
function observed(h: ScrapedHistogram, seconds: number[]): ScrapedHistogram {
  const counts = h.le.map((bound, k) => h.counts[k] + seconds.filter((v) => v <= bound).length);
  return { le: h.le, counts, sum: h.sum + seconds.reduce((a, b) => a + b, 0), count: h.count + seconds.length };
}

function empty(le: number[]): ScrapedHistogram {
  return { le, counts: le.map(() => 0), sum: 0, count: 0 };
}

function add(a: number[], b: number[]): number[] {
  return a.map((v, k) => v + b[k]);
}

describe("histogram deltas", () => {
  const decodePod = pod({ address: "d:8000", role: "decode", running: 20, kvTokensUsed: 120_000 });
  const isl = 1024;
  const baseline = profile.stepMs(decodePod, isl);

  /** Feeds `scrapes` deltas, each of the observations `interval(s)` gives (seconds); returns the samples learned. */
  function feed(o: OnlinePredictor, p: PodFeatures, quantity: "prefill-ttft" | "decode-tpot", tokens: number, scrapes: number, interval: (s: number) => number[]): number {
    let learned = 0;
    let h = empty(quantity === "decode-tpot" ? TPOT_LE : TTFT_LE);
    for (let s = 0; s < scrapes; s++) {
      const next = observed(h, interval(s));
      learned += o.observeHistogramDelta(p.address, quantity, p, tokens, h, next);
      h = next;
    }
    return learned;
  }

  it("learns the interval's mean from the histogram's sum, not a stand-in value per bucket: an exact profile stays at 1", () => {
    // The step (12 ms) is in vLLM's (10, 25] ms bucket, whose stand-in, sqrt(10 x 25) ms, taught 1.31.
    expect(baseline).toBeGreaterThan(10);
    expect(baseline).toBeLessThan(25);
    const o = online();
    expect(feed(o, decodePod, "decode-tpot", isl, 100, () => Array.from({ length: 50 }, () => baseline / 1000))).toBe(100);
    expect(o.correction(decodePod, "decode-tpot", isl)).toBeCloseTo(1, 2);
  });

  it("moves the correction to a slower pod's mean, and leaves the class's spread to completion reports", () => {
    const o = online();
    // 80% of tokens at 1.5 and 20% at 3 times the profile's step: a mean of 1.8 times.
    const interval = () => [...Array.from({ length: 8 }, () => (1.5 * baseline) / 1000), ...Array.from({ length: 2 }, () => (3 * baseline) / 1000)];
    expect(feed(o, decodePod, "decode-tpot", isl, 300, interval)).toBe(300);
    expect(o.correction(decodePod, "decode-tpot", isl)).toBeCloseTo(1.8, 1);
    expect(o.stats().classes[0].spreads["decode-tpot"]).toBe(1);
    expect(o.stats().histogramSamples).toBe(300);
  });

  it("a TTFT histogram of prompts of every size teaches an exact profile nothing, at the pool's mean ISL", () => {
    // Prompts log-uniform over 64-8,192 tokens, each prefilled exactly as the profile says on an idle pod:
    // compared one by one with the prediction at the mean ISL, their spread inflated predictions 3.6 times.
    const prefillPod = pod({ address: "p:8000", role: "prefill" });
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296;
    const prompts = Array.from({ length: 20 * 250 }, () => Math.round(64 * Math.pow(128, next())));
    const meanIsl = prompts.reduce((a, b) => a + b, 0) / prompts.length;
    const p = { ...prefillPod, meanIsl };
    const o = online();
    feed(o, p, "prefill-ttft", meanIsl, 250, (s) => prompts.slice(20 * s, 20 * s + 20).map((tokens) => profile.prefillMs(p, tokens) / 1000));
    // What is left is the profile's curvature: the mix's mean prefill over the prefill of its mean ISL.
    const curvature = prompts.reduce((a, tokens) => a + profile.prefillMs(p, tokens), 0) / prompts.length / profile.prefillMs(p, meanIsl);
    expect(curvature).toBeLessThan(1.15);
    expect(o.correction(p, "prefill-ttft", 1024) / curvature).toBeCloseTo(1, 1);
  });

  it("skips a counter reset, mismatched buckets, a decode pod's TTFT and pods that send reports", () => {
    const clock = new ManualClock();
    const o = online({}, clock);
    const before = histogram(TPOT_LE.map(() => 50));
    const after = histogram(TPOT_LE.map((_, k) => (k === 2 ? 60 : 50)));
    // A restarted pod: its counters start again from zero.
    expect(o.observeHistogramDelta(decodePod.address, "decode-tpot", decodePod, isl, after, histogram(TPOT_LE.map(() => 1)))).toBe(0);
    const otherBuckets = histogram([1, 2, 3], [0.01, 0.1, Infinity]);
    expect(o.observeHistogramDelta(decodePod.address, "decode-tpot", decodePod, isl, otherBuckets, after)).toBe(0);
    expect(o.observeHistogramDelta(decodePod.address, "prefill-ttft", decodePod, isl, before, after)).toBe(0);
    expect(o.stats().ignored).toMatchObject({ reset: 1, histogram: 1, role: 1 });
    expect(o.correction(decodePod, "decode-tpot", isl)).toBe(1);
    // Nothing happened between the scrapes: nothing to learn, nothing ignored.
    expect(o.observeHistogramDelta(decodePod.address, "decode-tpot", decodePod, isl, before, before)).toBe(0);

    o.observe({ address: decodePod.address, quantity: "decode-tpot", features: decodePod, inputTokens: isl, actualMs: baseline });
    expect(o.reportsSeenRecently(decodePod.address, "decode-tpot")).toBe(true);
    expect(o.reportsSeenRecently(decodePod.address, "decode-ttft")).toBe(false);
    clock.advance(ONLINE_DEFAULTS.reportWindowMs - 1);
    expect(o.observeHistogramDelta(decodePod.address, "decode-tpot", decodePod, isl, before, after)).toBe(0);
    expect(o.stats().ignored.reported).toBe(1);
    clock.advance(1);
    expect(o.reportsSeenRecently(decodePod.address)).toBe(false);
    expect(o.observeHistogramDelta(decodePod.address, "decode-tpot", decodePod, isl, before, after)).toBe(1);
  });
});

describe("hostile input", () => {
  const num = () =>
    fc.oneof(
      fc.double(),
      fc.constantFrom(0, -1, 1e300, -1e300, Number.MAX_VALUE, Number.MIN_VALUE),
      fc.double({ min: 0, max: 1e6, noNaN: true }),
    );
  const arbFeatures = fc.record({
    address: fc.constantFrom("a:1", "b:1", ""),
    role: fc.constantFrom("prefill", "decode", "both", "neither" as PodFeatures["role"]),
    tp: fc.oneof(fc.constantFrom(1, 2, 4), num()),
    profile: fc.constantFrom(H100, "unknown"),
    waiting: num(),
    running: num(),
    kvTokensUsed: num(),
    kvCapacityTokens: num(),
    prefillRequestsInFlight: num(),
    prefillTokensInFlight: num(),
    prefillMsInFlight: num(),
    localPrefillMsInFlight: num(),
    decodeRequestsInFlight: num(),
    decodeTokensInFlight: num(),
    meanIsl: num(),
    meanOsl: num(),
  });
  // Well-formed but extreme states, so the learning path itself meets huge numbers.
  const big = () => fc.oneof(fc.double({ min: 0, max: 1e12, noNaN: true }), fc.double({ min: 0, max: 100, noNaN: true }));
  const arbExtremeFeatures = fc.record({
    address: fc.constantFrom("a:1", "b:1"),
    role: fc.constantFrom<PodFeatures["role"]>("prefill", "decode", "both"),
    tp: fc.constantFrom(1, 2, 8),
    profile: fc.constant(H100),
    waiting: big(),
    running: big(),
    kvTokensUsed: big(),
    kvCapacityTokens: big(),
    prefillRequestsInFlight: big(),
    prefillTokensInFlight: big(),
    prefillMsInFlight: big(),
    localPrefillMsInFlight: big(),
    decodeRequestsInFlight: big(),
    decodeTokensInFlight: big(),
    meanIsl: big(),
    meanOsl: big(),
  });
  const arbSample: fc.Arbitrary<LatencySample> = fc.record({
    address: fc.constantFrom("a:1", "b:1", ""),
    quantity: fc.constantFrom<Quantity>(...QUANTITIES, "other" as Quantity),
    features: fc.oneof(arbFeatures, arbExtremeFeatures),
    inputTokens: fc.oneof(num(), big()),
    actualMs: fc.oneof(num(), fc.double({ min: 1e-6, max: 1e7, noNaN: true })),
  });
  const LE = [0.001, 0.01, 0.1, Infinity];
  const arbBuckets = fc.array(fc.nat({ max: 1000 }), { minLength: 4, maxLength: 4 });
  const arbHistogram: fc.Arbitrary<ScrapedHistogram> = fc.oneof(
    fc.record({ le: fc.array(num(), { maxLength: 6 }), counts: fc.array(num(), { maxLength: 6 }), sum: num(), count: num() }),
    arbBuckets.map((perBucket) => histogram(perBucket, LE)),
  );
  /** Two scrapes: unrelated (mostly rejected), or a well-formed interval. */
  const arbScrapes: fc.Arbitrary<[ScrapedHistogram, ScrapedHistogram]> = fc.oneof(
    fc.tuple(arbHistogram, arbHistogram),
    fc.tuple(arbBuckets, arbBuckets).map(([a, b]): [ScrapedHistogram, ScrapedHistogram] => [histogram(a, LE), histogram(add(a, b), LE)]),
  );

  /** Fills every quantity for well-formed pods and for hostile pods that name a known profile. */
  function fillAll(o: OnlinePredictor, extra: PodFeatures[]): void {
    const pods = [pod({ address: "a:1" }), pod({ address: "b:1", role: "decode", tp: 2 }), ...extra.filter((p) => p.profile === H100)];
    for (const q of QUANTITIES) {
      const out = allocatePredictions(pods.length, GRID);
      o.fill(q, pods, out);
      expectSane(out);
    }
  }

  it("NaN, infinite, negative and huge samples never throw, are counted, and never make a prediction non-finite or negative", () => {
    let learnedInAllRuns = 0;
    fc.assert(
      fc.property(fc.array(arbSample, { maxLength: 40 }), (batch) => {
        const o = online({ minPodSamples: 3 });
        let learned = 0;
        for (const s of batch) if (o.observe(s)) learned++;
        learnedInAllRuns += learned;
        const stats = o.stats();
        const ignored = Object.values(stats.ignored).reduce((a, b) => a + b, 0);
        expect(learned + ignored).toBe(batch.length);
        expect(stats.reportSamples).toBe(learned);
        fillAll(o, batch.map((s) => s.features));
        for (const s of batch) {
          if (s.features.profile !== H100) continue;
          for (const q of QUANTITIES) {
            const f = o.correction(s.features, q, s.inputTokens);
            expect(f).toBeGreaterThanOrEqual(0.25);
            expect(f).toBeLessThanOrEqual(8);
          }
        }
      }),
      { seed: 20261122, numRuns: 200 },
    );
    // The runs reached the learning path, not only the rejections.
    expect(learnedInAllRuns).toBeGreaterThan(50);
  });

  it("random histograms never throw and never make a prediction non-finite or negative", () => {
    let learnedInAllRuns = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.oneof(arbFeatures, arbExtremeFeatures),
            num(),
            arbScrapes,
            fc.constantFrom<"prefill-ttft" | "decode-tpot">("prefill-ttft", "decode-tpot"),
          ),
          { maxLength: 20 },
        ),
        (deltas) => {
          const o = online({ minPodSamples: 5 });
          for (const [features, tokens, [previous, current], quantity] of deltas) {
            const learned = o.observeHistogramDelta(features.address, quantity, features, tokens, previous, current);
            learnedInAllRuns += learned;
            expect(learned).toBeGreaterThanOrEqual(0);
            expect(learned).toBeLessThanOrEqual(1);
          }
          fillAll(o, deltas.map(([features]) => features));
        },
      ),
      { seed: 20261123, numRuns: 200 },
    );
    expect(learnedInAllRuns).toBeGreaterThan(50);
  });

  it("a saturated profile prediction is not learned from, and fill keeps it bounded", () => {
    const o = online();
    // A prompt larger than the pod's whole KV cache never fits: the profile's admission wait is the cap.
    const full = pod({ address: "f:1", role: "decode", kvCapacityTokens: 512 });
    expect(profile.decodeWaitMs(full, 1024)).toBe(MAX_PREDICTION_MS);
    expect(o.observe({ address: "f:1", quantity: "decode-ttft", features: full, inputTokens: 1024, actualMs: 50 })).toBe(false);
    expect(o.stats().ignored.baseline).toBe(1);
    for (let i = 0; i < 200; i++) {
      const s = pod({ address: "f:1", role: "decode", running: 4 });
      o.observe({ address: "f:1", quantity: "decode-ttft", features: s, inputTokens: 1024, actualMs: 1000 * profile.decodeWaitMs(s, 1024) });
    }
    const out = allocatePredictions(1, GRID);
    o.fill("decode-ttft", [full], out);
    expectSane(out);
    expect(Math.max(...out.decodeWaitMs)).toBeLessThanOrEqual(MAX_PREDICTION_MS);
  });

  it("refuses options outside their ranges", () => {
    const bad: Partial<OnlineOptions>[] = [
      { quantile: 0 },
      { quantile: 1 },
      { minPodSamples: 0 },
      { minPodSamples: 1.5 },
      { reportWindowMs: -1 },
      { minFactor: 0 },
      { minFactor: 2 },
      { maxFactor: 0.5 },
      { maxFactor: Infinity },
      { eta0: 0 },
      { etaMin: 0 },
      { etaMin: 1 },
      { meanWindow: 0 },
      { quantile: NaN },
    ];
    for (const options of bad) expect(() => online(options), JSON.stringify(options)).toThrow(RangeError);
    expect(() => online({ quantile: 0.5, minPodSamples: 1 })).not.toThrow();
  });
});
