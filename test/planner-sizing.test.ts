// Sizing against numbers worked out by hand from the shipped profile (h100_llama3_8b_bf16): one worker's
// prefill and decode capacity, worker counts, corrections, layouts, the GPU budget by priority.

import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { allocateBudget, checkMinimums, fitToCap, layoutFor, sizeNeed, workerCapacity, type SizingParams } from "../src/planner/sizing.js";

const profile = LatencyProfile.shipped("h100_llama3_8b_bf16");

// The profile's decode model, as fitted from its CSV: step = c0 + c1 * batch + c2 * kvTokens (ms).
const c0 = 6.7197949831362465;
const c1 = 0.010463268368433263;
const c2 = 0.00004200269711885818;
// Batch-1 prefill of 2,000 tokens: between the 1,024 (25.843 ms) and 2,048 (52.713 ms) rows.
const PREFILL_2000_MS = 25.843 + ((2000 - 1024) * (52.713 - 25.843)) / (2048 - 1024);

const HIGH: SizingParams = { tp: 2, tpEfficiency: 0.85, gpuMemoryUtilization: 0.95, itlMs: 30, bufferRatio: 0.8 };
const MEDIUM: SizingParams = { tp: 1, tpEfficiency: 0.85, gpuMemoryUtilization: 0.9, itlMs: 50, bufferRatio: 0.85 };

describe("one worker's capacity", () => {
  it("matches the profile's fitted model (guards the hand-computed numbers below)", () => {
    expect(profile.decode.c0).toBeCloseTo(c0, 12);
    expect(profile.decode.perSequenceMs).toBeCloseTo(c1, 14);
    expect(profile.decode.perKvTokenMs).toBeCloseTo(c2, 16);
    expect(profile.prefillMs(2000)).toBeCloseTo(PREFILL_2000_MS, 12);
  });

  it("high pool, TP=2 at ISL 2000 / OSL 150: prefill at 1.7x, decode at the largest batch meeting 30 ms", () => {
    const cap = workerCapacity(profile, HIGH, 2000, 150);
    // TP=2 at 85 % efficiency runs 1.7x one GPU.
    expect(cap.speedup).toBeCloseTo(1.7, 12);
    expect(cap.prefillMs).toBeCloseTo(PREFILL_2000_MS / 1.7, 9); // 30.27 ms
    expect(cap.prefillTokensPerS).toBeCloseTo(2000 / (PREFILL_2000_MS / 1.7 / 1000), 6); // 66,079 tok/s
    // Context 2000 + 150/2 = 2075 per sequence; (c0 + b (c1 + 2075 c2)) / 1.7 <= 30 gives b <= 453.6.
    expect(cap.contextTokens).toBe(2075);
    expect(cap.decodeBatch).toBe(453);
    // KV: 2 x (80 x 0.95 - 15 / 2) GiB / 128 KiB = 1,122,304 tokens, 540 sequences: not the bound.
    expect(cap.kvCapacityTokens).toBe(1_122_304);
    expect(cap.kvLimited).toBe(false);
    const stepMs = (c0 + 453 * c1 + 453 * 2075 * c2) / 1.7; // 29.97 ms
    expect(cap.decodeStepMs).toBeCloseTo(stepMs, 9);
    expect(cap.decodeTokensPerS).toBeCloseTo((453 * 1000) / stepMs, 6); // 15,117 tok/s
    expect(Math.round(cap.decodeTokensPerS)).toBe(15_117);
    expect(Math.round(cap.prefillTokensPerS)).toBe(66_079);
  });

  it("medium pool, TP=1: the batch is bound by KV, not by the 50 ms ITL", () => {
    const cap = workerCapacity(profile, MEDIUM, 2000, 150);
    expect(cap.speedup).toBe(1);
    expect(cap.prefillTokensPerS).toBeCloseTo(2000 / (PREFILL_2000_MS / 1000), 6); // 38,870 tok/s
    // The ITL allows (50 - c0) / (c1 + 2075 c2) = 443 sequences; KV (80 x 0.9 - 15 GiB) holds 466,944
    // tokens, 225 sequences of 2075.
    expect(cap.kvCapacityTokens).toBe(466_944);
    expect(cap.decodeBatch).toBe(225);
    expect(cap.kvLimited).toBe(true);
    const stepMs = c0 + 225 * c1 + 225 * 2075 * c2; // 28.68 ms
    expect(cap.decodeTokensPerS).toBeCloseTo((225 * 1000) / stepMs, 6); // 7,844 tok/s
  });

  it("sizes at batch 1 and says so when even one sequence misses the ITL", () => {
    const cap = workerCapacity(profile, { ...MEDIUM, itlMs: 5 }, 2000, 150);
    expect(cap.decodeBatch).toBe(1);
    expect(cap.itlReachable).toBe(false);
  });
});

describe("workers for a load", () => {
  it("divides demand by buffered capacity and rounds up", () => {
    // 50 req/s at ISL 2000: 100,000 prefill tok/s over 66,079 x 0.8 = 52,863 -> 1.89 -> 2 workers;
    // 7,500 output tok/s over 15,117 x 0.8 = 12,094 -> 0.62 -> 1 worker.
    const need = sizeNeed(profile, HIGH, { ratePerS: 50, isl: 2000, osl: 150 });
    const prefillPerWorker = 2000 / (PREFILL_2000_MS / 1.7 / 1000);
    const decodePerWorker = (453 * 1000) / ((c0 + 453 * (c1 + 2075 * c2)) / 1.7);
    expect(need.prefillTokensPerS).toBe(100_000);
    expect(need.outputTokensPerS).toBe(7_500);
    expect(need.prefillShare).toBeCloseTo(100_000 / (prefillPerWorker * 0.8), 9);
    expect(need.decodeShare).toBeCloseTo(7_500 / (decodePerWorker * 0.8), 9);
    expect(need.prefillWorkers).toBe(2);
    expect(need.decodeWorkers).toBe(1);
  });

  it("applies the corrections: prefill scales the demand, decode divides the ITL and the tokens/s", () => {
    const halfPrefill = sizeNeed(profile, HIGH, { ratePerS: 50, isl: 2000, osl: 150 }, { prefill: 0.5, decode: 1 });
    expect(halfPrefill.prefillTokensPerS).toBe(50_000);
    expect(halfPrefill.prefillWorkers).toBe(1);
    // Decode running 2x slower than the profile: size for a 15 ms ITL, (15 x 1.7 - c0) / (c1 + 2075 c2) -> 192.
    const slowDecode = sizeNeed(profile, HIGH, { ratePerS: 50, isl: 2000, osl: 150 }, { prefill: 1, decode: 2 });
    expect(slowDecode.capacity.itlMs).toBe(15);
    expect(slowDecode.capacity.decodeBatch).toBe(192);
    // Each step of that batch takes 2x the profile's (14.98 ms -> 29.96 ms): 192 / 29.96 ms = 6,409 tok/s,
    // not the profile's 12,819.
    const profileStepMs = (c0 + 192 * (c1 + 2075 * c2)) / 1.7;
    expect(slowDecode.capacity.decodeStepMs).toBeCloseTo(profileStepMs, 9);
    expect(slowDecode.capacity.decodeTokensPerS).toBeCloseTo((192 * 1000) / (2 * profileStepMs), 6);
    expect(Math.round(slowDecode.capacity.decodeTokensPerS)).toBe(6_409);
    expect(slowDecode.decodeShare).toBeCloseTo(7_500 / (((192 * 1000) / (2 * profileStepMs)) * 0.8), 9);
    // The review's case: 100 req/s, 15,000 output tok/s over 6,409 x 0.8 = 2.93 -> 3 decode-capable
    // workers (2 when the step was taken at the profile's speed: 15,000 / (12,819 x 0.8) = 1.46).
    const review = sizeNeed(profile, HIGH, { ratePerS: 100, isl: 2000, osl: 150 }, { prefill: 1, decode: 2 });
    expect(review.decodeShare).toBeCloseTo(2.925, 3);
    expect(review.decodeWorkers).toBe(3);
  });
});

describe("layouts", () => {
  const need = (prefillShare: number, decodeShare: number) => ({
    ...sizeNeed(profile, MEDIUM, { ratePerS: 0, isl: 2000, osl: 150 }),
    prefillShare,
    decodeShare,
    prefillWorkers: Math.ceil(prefillShare),
    decodeWorkers: Math.ceil(decodeShare),
  });

  it("keeps a need that fits one worker on one both worker", () => {
    expect(layoutFor(need(0.5, 0.4), 8, false)).toEqual({ layout: { prefill: 0, decode: 0, both: 1 }, aggregated: true });
    expect(layoutFor(need(0, 0), 8, false).layout).toEqual({ prefill: 0, decode: 0, both: 1 });
  });

  it("adds prefill workers and decode workers beside the both worker", () => {
    expect(layoutFor(need(0.6, 0.6), 8, false).layout).toEqual({ prefill: 1, decode: 0, both: 1 });
    expect(layoutFor(need(2.5, 1.2), 8, false).layout).toEqual({ prefill: 3, decode: 1, both: 1 });
  });

  it("under cost optimisation takes fewer all-both workers when that is fewer", () => {
    // 1 prefill + 2 decode-capable disaggregated, or ceil(0.2 + 1.3) = 2 workers that prefill locally.
    expect(layoutFor(need(0.2, 1.3), 8, true)).toEqual({ layout: { prefill: 0, decode: 0, both: 2 }, aggregated: true });
    expect(layoutFor(need(0.2, 1.3), 8, false).layout).toEqual({ prefill: 1, decode: 1, both: 1 });
    expect(layoutFor(need(1.5, 1.5), 8, true).layout).toEqual({ prefill: 0, decode: 0, both: 3 });
    // Equal counts: disaggregated stays.
    expect(layoutFor(need(0.9, 0.9), 8, true).layout).toEqual({ prefill: 1, decode: 0, both: 1 });
  });

  it("fits a cap by taking from the role that leaves the busiest worker least busy", () => {
    // 3P + 2 decode-capable: dropping a decode worker (busiest 1.2) beats dropping prefill (1.25);
    // then only prefill can go.
    expect(layoutFor(need(2.5, 1.2), 3, false).layout).toEqual({ prefill: 2, decode: 0, both: 1 });
    // 1P + 4 decode-capable into 3: the prefill worker goes first (4.4 / 4 = 1.1 each beats 3.5 / 3),
    // then a decode worker: three decode-capable workers prefilling locally (1.47 each) beat
    // 1P + 2 decode-capable (1.75).
    expect(layoutFor(need(0.9, 3.5), 3, false).layout).toEqual({ prefill: 0, decode: 2, both: 1 });
    expect(layoutFor(need(2.5, 1.2), 1, false).layout).toEqual({ prefill: 0, decode: 0, both: 1 });
    expect(fitToCap({ prefill: 2, decode: 2, both: 1 }, 0)).toEqual({ prefill: 0, decode: 0, both: 1 });
  });

  /** The rule as it was first written, one worker per turn of the loop: the reference for fitToCap. */
  const oneAtATime = (layout: { prefill: number; decode: number; both: number }, cap: number, p?: number, d?: number) => {
    const out = { ...layout };
    while (out.prefill + out.decode + out.both > Math.max(1, cap)) {
      const c = out.decode + out.both;
      let takePrefill: boolean;
      if (out.prefill === 0) takePrefill = false;
      else if (c <= 1) takePrefill = true;
      else if (p === undefined || d === undefined) takePrefill = out.prefill >= c;
      else {
        const withoutPrefill = out.prefill > 1 ? Math.max(p / (out.prefill - 1), d / c) : (p + d) / c;
        const withoutDecode = Math.max(p / out.prefill, d / (c - 1));
        takePrefill = withoutPrefill < withoutDecode || (withoutPrefill === withoutDecode && out.prefill >= c);
      }
      if (takePrefill) out.prefill--;
      else if (out.decode > 0) out.decode--;
      else out.both--;
    }
    return out;
  };

  it("fits any need within the cap at once, however many workers it asks for", () => {
    // ISL = OSL = 10 million tokens at 100 req/s: KV holds no sequence, so a decode worker runs a
    // batch of one and the need is hundreds of millions of workers.
    const huge = sizeNeed(profile, MEDIUM, { ratePerS: 100, isl: 1e7, osl: 1e7 });
    expect(huge.decodeWorkers).toBeGreaterThan(7e8);
    // Before: one worker taken away per turn of the loop, seconds here (and past 2^53 workers, for
    // ever: the 2^60 cases below never returned).
    const fitted = layoutFor(huge, 3, false).layout;
    expect(fitted).toEqual(oneAtATime({ prefill: 3, decode: 3, both: 1 }, 3, huge.prefillShare, huge.decodeShare));
    // Aggregating saves no worker here (ceil of the sum of shares = the sum of the ceilings).
    expect(layoutFor(huge, 3, true).layout).toEqual(fitted);
    expect(layoutFor(need(1e12 + 0.5, 1e12 + 0.4), 3, true).layout).toEqual({ prefill: 0, decode: 0, both: 3 });
    expect(fitToCap({ prefill: 2 ** 60, decode: 2 ** 60, both: 1 }, 4, need(2 ** 60, 2 ** 60))).toEqual(
      oneAtATime({ prefill: 5, decode: 4, both: 1 }, 4, 2 ** 60, 2 ** 60),
    );
    expect(fitToCap({ prefill: 2 ** 60, decode: 0, both: 1 }, 3)).toEqual({ prefill: 2, decode: 0, both: 1 });
  });

  it("takes the workers that taking them one at a time would, from any layout", () => {
    const shares = [0, 0.1, 0.3, 0.5, 1, 1.5, 2.5, 3, 3.5, 7, 100, 1 / 3];
    const wrong: string[] = [];
    for (let cap = 1; cap <= 5; cap++) {
      for (let prefill = 0; prefill <= 3 * cap + 3; prefill++) {
        for (let decode = 0; decode <= 3 * cap + 3; decode++) {
          for (const both of [0, 1, 2, cap + 2]) {
            const from = { prefill, decode, both };
            const check = (p?: number, d?: number) => {
              const fitted = fitToCap(from, cap, p === undefined ? undefined : { prefillShare: p, decodeShare: d! });
              const reference = oneAtATime(from, cap, p, d);
              if (JSON.stringify(fitted) !== JSON.stringify(reference)) wrong.push(JSON.stringify({ from, cap, p, d, fitted, reference }));
            };
            check();
            for (const p of shares) for (const d of shares) check(p, d);
          }
        }
      }
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  });
});

describe("the GPU budget", () => {
  const claim = (pool: string, sloPriority: number, tp: number, wantedWorkers: number) => ({ pool, sloPriority, tp, wantedWorkers });

  it("serves pools in priority order; lower priorities yield first", () => {
    // 8 GPUs: every pool's minimum (2 + 1 + 1) first, then high takes 2 more workers (4 GPUs), medium 0.
    const granted = allocateBudget([claim("low", 3, 1, 3), claim("high", 1, 2, 3), claim("medium", 2, 1, 3)], 8);
    expect(Object.fromEntries(granted)).toEqual({ high: 3, medium: 1, low: 1 });
    // With 10 GPUs medium gets the rest, low still yields.
    expect(Object.fromEntries(allocateBudget([claim("low", 3, 1, 3), claim("high", 1, 2, 3), claim("medium", 2, 1, 3)], 10))).toEqual({
      high: 3,
      medium: 3,
      low: 1,
    });
  });

  it("gives every pool what it wants when the budget allows", () => {
    expect(Object.fromEntries(allocateBudget([claim("high", 1, 2, 2), claim("medium", 2, 1, 3), claim("low", 3, 1, 1)], 8))).toEqual({
      high: 2,
      medium: 3,
      low: 1,
    });
  });

  it("breaks priority ties by the pools' order and never goes below one worker", () => {
    expect(Object.fromEntries(allocateBudget([claim("a", 1, 1, 4), claim("b", 1, 1, 4)], 5))).toEqual({ a: 4, b: 1 });
    expect(Object.fromEntries(allocateBudget([claim("a", 1, 4, 4), claim("b", 2, 4, 4)], 8))).toEqual({ a: 1, b: 1 });
  });

  it("rejects pools whose minimums exceed the budget, naming the field", () => {
    const pools = [
      { name: "high", tp: 4, maxGpus: 8 },
      { name: "medium", tp: 2, maxGpus: 4 },
      { name: "low", tp: 1, maxGpus: 1 },
    ];
    expect(() => checkMinimums(pools, 7)).not.toThrow();
    let error: unknown;
    try {
      checkMinimums(pools, 6);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      "cluster.gpuBudget: must cover every pool's minimum of one worker (7 GPUs: high 4 + medium 2 + low 1), got 6",
    ]);
    expect(() => checkMinimums([{ name: "x", tp: 0, maxGpus: 1 }], 8)).toThrow(/pools\[0\]\.tp/);
    expect(() => checkMinimums([{ name: "x", tp: 4, maxGpus: 2 }], 8)).toThrow(/pools\[0\]\.tp: must be <= maxGpus/);
  });
});
