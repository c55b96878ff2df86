// Sizing a pool from the latency profile (SPEC.md §6): what one worker of the pool's TP sustains in
// prefill and decode, how many workers a load needs, how those become a layout within a worker cap, and
// how the cluster's GPU budget is shared with lower-priority pools yielding first.

import { ConfigError } from "../errors.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import { tpSpeedup } from "../predictors/profile.js";
import { totalWorkers, type Layout } from "./types.js";

export interface SizingParams {
  tp: number;
  /** A TP=t worker runs t x tpEfficiency times faster than one GPU (t > 1). */
  tpEfficiency: number;
  gpuMemoryUtilization: number;
  /** The inter-token latency target (the pool's tpotMs). */
  itlMs: number;
  bufferRatio: number;
}

/** What one worker sustains at a given ISL and OSL. */
export interface WorkerCapacity {
  tp: number;
  speedup: number;
  /** Tokens each decoding sequence holds on average: ISL + OSL / 2. */
  contextTokens: number;
  /** Prefill of one prompt of ISL tokens. */
  prefillMs: number;
  prefillTokensPerS: number;
  /** The ITL the decode batch was sized for (the target, divided by the decode correction). */
  itlMs: number;
  /** Observed over profile-predicted decode latency: a worker's steps take this many times the profile's. */
  decodeCorrection: number;
  /** The largest batch whose step meets itlMs and whose KV fits. */
  decodeBatch: number;
  /** The profile's step at decodeBatch (meets itlMs); the worker really takes decodeCorrection times this. */
  decodeStepMs: number;
  /** Output tokens/s of the worker as it really runs: decodeBatch per (decodeCorrection x decodeStepMs). */
  decodeTokensPerS: number;
  kvCapacityTokens: number;
  /** False when even one sequence misses itlMs: the worker is then sized at batch 1. */
  itlReachable: boolean;
  /** True when KV capacity, not the ITL, bounds the batch. */
  kvLimited: boolean;
}

/**
 * `decodeCorrection` (c_d): a worker c_d times slower than the profile meets the ITL target only at the
 * batch whose profile step meets target / c_d, and runs each of those steps c_d times longer, so its
 * tokens/s are the profile's at that batch divided by c_d.
 */
export function workerCapacity(profile: LatencyProfile, params: SizingParams, isl: number, osl: number, decodeCorrection = 1): WorkerCapacity {
  const itlMs = params.itlMs / decodeCorrection;
  const speedup = tpSpeedup(params.tp, params.tpEfficiency);
  const prefillMs = profile.prefillMs(isl) / speedup;
  const contextTokens = isl + osl / 2;
  const kvCapacityTokens = profile.kvCapacityTokens(params.tp, params.gpuMemoryUtilization);
  // stepMs(b) = (c0 + b * (perSequence + perKvToken * context)) / speedup <= itlMs
  const { c0, perSequenceMs, perKvTokenMs } = profile.decode;
  const perSequence = perSequenceMs + perKvTokenMs * contextTokens;
  const byItl = perSequence > 0 ? Math.floor((itlMs * speedup - c0) / perSequence) : Infinity;
  const byKv = Math.floor(kvCapacityTokens / contextTokens);
  const decodeBatch = Math.max(1, Math.min(byItl, byKv));
  const decodeStepMs = profile.stepMs(decodeBatch, decodeBatch * contextTokens) / speedup;
  return {
    tp: params.tp,
    speedup,
    contextTokens,
    prefillMs,
    prefillTokensPerS: (isl * 1000) / prefillMs,
    itlMs,
    decodeCorrection,
    decodeBatch,
    decodeStepMs,
    decodeTokensPerS: (decodeBatch * 1000) / (decodeCorrection * decodeStepMs),
    kvCapacityTokens,
    itlReachable: byItl >= 1,
    kvLimited: byKv < byItl,
  };
}

export interface Load {
  ratePerS: number;
  isl: number;
  osl: number;
}

/** Observed / predicted latency, clamped: prefill multiplies the prefill demand, decode divides the ITL. */
export interface Corrections {
  prefill: number;
  decode: number;
}

export const NO_CORRECTION: Readonly<Corrections> = Object.freeze({ prefill: 1, decode: 1 });

export interface Need {
  load: Load;
  corrections: Corrections;
  capacity: WorkerCapacity;
  prefillTokensPerS: number;
  outputTokensPerS: number;
  /** Demand over buffered capacity, unrounded: 1.4 means one worker and 40 % of another. */
  prefillShare: number;
  decodeShare: number;
  prefillWorkers: number;
  decodeWorkers: number;
}

/**
 * prefill workers = ceil(rate x ISL x prefill correction / (prefill tokens/s of one worker x buffer));
 * decode workers = ceil(rate x OSL / (tokens/s of one worker at the largest batch whose profile step
 * meets ITL / decode correction, divided by the decode correction (each step really takes that many
 * times the profile's), at context ISL + OSL/2, x buffer)).
 */
export function sizeNeed(profile: LatencyProfile, params: SizingParams, load: Load, corrections: Corrections = NO_CORRECTION): Need {
  const capacity = workerCapacity(profile, params, load.isl, load.osl, corrections.decode);
  const prefillTokensPerS = load.ratePerS * load.isl * corrections.prefill;
  const outputTokensPerS = load.ratePerS * load.osl;
  const prefillShare = prefillTokensPerS / (capacity.prefillTokensPerS * params.bufferRatio);
  const decodeShare = outputTokensPerS / (capacity.decodeTokensPerS * params.bufferRatio);
  return {
    load,
    corrections,
    capacity,
    prefillTokensPerS,
    outputTokensPerS,
    prefillShare,
    decodeShare,
    prefillWorkers: Math.ceil(prefillShare),
    decodeWorkers: Math.ceil(decodeShare),
  };
}

/**
 * Requests per second a layout serves at the capacity's ISL and OSL, without buffer: prefill workers
 * and decode-capable workers each up to their throughput, or, without prefill workers, decode-capable
 * workers sharing prefill and decode.
 */
export function layoutCapacityPerS(layout: Layout, capacity: WorkerCapacity, isl: number, osl: number): number {
  const decodeCapable = layout.decode + layout.both;
  const prefillSecondsPerRequest = isl / capacity.prefillTokensPerS;
  const decodeSecondsPerRequest = osl / capacity.decodeTokensPerS;
  if (layout.prefill === 0) return decodeCapable / (prefillSecondsPerRequest + decodeSecondsPerRequest);
  return Math.min(layout.prefill / prefillSecondsPerRequest, decodeCapable / decodeSecondsPerRequest);
}

export interface LayoutChoice {
  layout: Layout;
  /** Every worker prefills for itself (role both): one worker, or fewer workers under cost optimisation. */
  aggregated: boolean;
}

/**
 * The layout a need asks for, within `maxWorkers`. A need that fits one worker is one `both` worker;
 * otherwise prefill workers plus decode-capable ones (the `both` worker and decode workers). Cost
 * optimisation takes all-`both` workers instead when that needs fewer workers. A need can be any size
 * (huge prompts, a KV-bound batch of one): fitToCap brings it within the cap at once.
 */
export function layoutFor(need: Need, maxWorkers: number, costOptimization: boolean): LayoutChoice {
  const combined = need.prefillShare + need.decodeShare;
  if (combined <= 1 || maxWorkers <= 1) return { layout: { prefill: 0, decode: 0, both: 1 }, aggregated: true };
  const prefill = Math.max(1, need.prefillWorkers);
  const decodeCapable = Math.max(1, need.decodeWorkers);
  const aggregatedWorkers = Math.ceil(combined);
  if (costOptimization && aggregatedWorkers < prefill + decodeCapable) {
    return { layout: { prefill: 0, decode: 0, both: Math.min(aggregatedWorkers, maxWorkers) }, aggregated: true };
  }
  return { layout: fitToCap({ prefill, decode: decodeCapable - 1, both: 1 }, maxWorkers, need), aggregated: false };
}

/**
 * Takes workers away one at a time until at most `cap` remain, each time from the role that leaves the
 * busiest worker least busy (without prefill workers, decode-capable workers prefill for themselves);
 * without a need, from the larger role. The last `both` worker stays.
 *
 * Prefill workers and decode-capable workers (decode ones first) are first cut to cap + 1 each at
 * once, which ends where one at a time would (checked against the one-at-a-time loop in
 * test/planner-sizing.test.ts): the loop then runs at most cap + 2 times, however many workers the
 * layout asks for (one at a time, a need of billions would take billions of turns, and past 2^53 a
 * decrement changes nothing).
 */
export function fitToCap(layout: Layout, cap: number, need?: Pick<Need, "prefillShare" | "decodeShare">): Layout {
  const limit = Math.max(1, cap);
  if (totalWorkers(layout) <= limit) return { ...layout };
  const both = Math.min(layout.both, limit + 1);
  const out = { prefill: Math.min(layout.prefill, limit + 1), decode: Math.min(layout.decode, limit + 1 - both), both };
  while (totalWorkers(out) > limit) {
    const prefill = out.prefill;
    const decodeCapable = out.decode + out.both;
    let takePrefill: boolean;
    if (prefill === 0) takePrefill = false;
    else if (decodeCapable <= 1) takePrefill = true;
    else if (need === undefined) takePrefill = prefill >= decodeCapable;
    else {
      const { prefillShare: p, decodeShare: d } = need;
      const withoutPrefill = prefill > 1 ? Math.max(p / (prefill - 1), d / decodeCapable) : (p + d) / decodeCapable;
      const withoutDecode = Math.max(p / prefill, d / (decodeCapable - 1));
      takePrefill = withoutPrefill < withoutDecode || (withoutPrefill === withoutDecode && prefill >= decodeCapable);
    }
    if (takePrefill) out.prefill--;
    else if (out.decode > 0) out.decode--;
    else out.both--;
  }
  return out;
}

export interface BudgetClaim {
  pool: string;
  sloPriority: number;
  tp: number;
  /** Workers the pool would run without the budget (at least 1). */
  wantedWorkers: number;
}

/**
 * The most workers each pool may run: every pool keeps one worker, then pools are served in priority
 * order (sloPriority 1 first, ties in the order given) from what is left, so lower-priority pools
 * yield first.
 */
export function allocateBudget(claims: readonly BudgetClaim[], gpuBudget: number): Map<string, number> {
  const granted = new Map<string, number>();
  let left = gpuBudget - claims.reduce((sum, c) => sum + c.tp, 0);
  const byPriority = claims.map((c, i) => ({ c, i })).sort((a, b) => a.c.sloPriority - b.c.sloPriority || a.i - b.i);
  for (const { c } of byPriority) {
    const extra = Math.max(0, Math.min(c.wantedWorkers - 1, Math.floor(Math.max(0, left) / c.tp)));
    left -= extra * c.tp;
    granted.set(c.pool, 1 + extra);
  }
  return granted;
}

/** Rejects pools whose minimum of one worker each cannot fit the budget, naming the field to change. */
export function checkMinimums(pools: readonly { name: string; tp: number; maxGpus: number }[], gpuBudget: number): void {
  const problems: string[] = [];
  pools.forEach((p, i) => {
    if (!(Number.isInteger(p.tp) && p.tp >= 1)) problems.push(`pools[${i}].tp: must be an integer >= 1, got ${p.tp}`);
    else if (p.tp > p.maxGpus) problems.push(`pools[${i}].tp: must be <= maxGpus (${p.maxGpus}), got ${p.tp}`);
  });
  const minimum = pools.reduce((sum, p) => sum + p.tp, 0);
  if (minimum > gpuBudget) {
    problems.push(
      `cluster.gpuBudget: must cover every pool's minimum of one worker (${minimum} GPUs: ${pools.map((p) => `${p.name} ${p.tp}`).join(" + ")}), got ${gpuBudget}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
}
