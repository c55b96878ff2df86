// The policies the simulator compares (SPEC.md §8), behind one interface: each sees the pods' scraped
// metrics only when a scrape is delivered (the same scrapes for every policy), picks a placement per
// request, and hears of each completion. The baselines live here; `headroom` runs the real engine
// pieces (src/sim/headroom.ts).

import type { Clock } from "../clock.js";
import { Splitmix32 } from "../kernel/prng.js";
import type { PodMetrics } from "../pods/types.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import type { Capacity } from "./capacity.js";
import type { Job, PodGauges, Placement } from "./pods.js";
import type { Scenario, SimPodSpec } from "./scenario.js";
import type { SimRequest } from "./workload.js";

export interface PolicyContext {
  scenario: Scenario;
  pods: readonly SimPodSpec[];
  clock: Clock;
  profiles: ReadonlyMap<string, LatencyProfile>;
  capacity: Capacity;
  /** The simulated cluster itself, for the omniscient reference policy only. */
  truth: { gauges(pod: number): PodGauges; workAheadMs(pod: number): number };
}

export interface Policy {
  readonly name: string;
  /** A scrape of pod `pod` (index into ctx.pods) arrives. */
  observe(pod: number, metrics: PodMetrics): void;
  /** Called once, after the idle cluster's first scrapes and before the first pick. */
  ready?(): void;
  /** Where the request goes; null when the policy cannot place it (counted as unrouted). */
  pick(req: SimRequest): Placement | null;
  /** The request's last token is out. */
  complete(job: Job): void;
  /** The cluster refused the request at dispatch (it does not fit its decode pod's KV). */
  fail?(job: Job): void;
  /** Counters worth reporting (e.g. pick outcomes). */
  stats?(): Record<string, number>;
  close?(): void;
}

/** Indices of the prefill and the decode pods. */
export function roles(pods: readonly SimPodSpec[]): { prefill: number[]; decode: number[] } {
  const prefill: number[] = [];
  const decode: number[] = [];
  pods.forEach((p, i) => (p.role === "prefill" ? prefill : decode).push(i));
  return { prefill, decode };
}

/** Uniform pod choice per role. */
export class RandomPolicy implements Policy {
  readonly name = "random";
  private readonly roles: { prefill: number[]; decode: number[] };

  constructor(ctx: PolicyContext) {
    this.roles = roles(ctx.pods);
  }

  observe(): void {}

  pick(req: SimRequest): Placement {
    const rng = new Splitmix32(req.seed);
    const { prefill, decode } = this.roles;
    return { prefill: prefill[Math.floor(rng.next() * prefill.length)], decode: decode[Math.floor(rng.next() * decode.length)] };
  }

  complete(): void {}
}

/** Each role's pods in turn, independently. */
export class RoundRobinPolicy implements Policy {
  readonly name = "round-robin";
  private readonly roles: { prefill: number[]; decode: number[] };
  private nextPrefill = 0;
  private nextDecode = 0;

  constructor(ctx: PolicyContext) {
    this.roles = roles(ctx.pods);
  }

  observe(): void {}

  pick(): Placement {
    const { prefill, decode } = this.roles;
    const placement = { prefill: prefill[this.nextPrefill], decode: decode[this.nextDecode] };
    this.nextPrefill = (this.nextPrefill + 1) % prefill.length;
    this.nextDecode = (this.nextDecode + 1) % decode.length;
    return placement;
  }

  complete(): void {}
}

/** The latest scrape of every pod (zeros before the first). */
class ScrapedView {
  readonly waiting: Float64Array;
  readonly running: Float64Array;
  readonly kvUsage: Float64Array;
  readonly seen: Uint8Array;

  constructor(pods: number) {
    this.waiting = new Float64Array(pods);
    this.running = new Float64Array(pods);
    this.kvUsage = new Float64Array(pods);
    this.seen = new Uint8Array(pods);
  }

  observe(pod: number, m: PodMetrics): void {
    this.waiting[pod] = m.waiting;
    this.running[pod] = m.running;
    this.kvUsage[pod] = m.kvUsage;
    this.seen[pod] = 1;
  }
}

/** A policy that sees the pods only through their scrapes, choosing among each role's pods. */
abstract class ScrapedPolicy implements Policy {
  abstract readonly name: string;
  protected readonly roles: { prefill: number[]; decode: number[] };
  protected readonly view: ScrapedView;

  constructor(ctx: PolicyContext) {
    this.roles = roles(ctx.pods);
    this.view = new ScrapedView(ctx.pods.length);
  }

  observe(pod: number, metrics: PodMetrics): void {
    this.view.observe(pod, metrics);
  }

  abstract pick(req: SimRequest): Placement | null;

  complete(): void {}
}

/**
 * The gateway's default scorers: queue depth (scraped waiting requests) and KV utilisation, weight 1
 * each, each min-max normalised across the candidate pods (lower is better; all equal scores 1), then
 * the highest total; ties drawn uniformly (the max-score picker shuffles). Prefill and decode pods are
 * chosen independently, each among its role.
 */
export class QueueKvPolicy extends ScrapedPolicy {
  readonly name = "queue-kv";

  pick(req: SimRequest): Placement {
    const rng = new Splitmix32(req.seed);
    return { prefill: this.best(this.roles.prefill, rng), decode: this.best(this.roles.decode, rng) };
  }

  /** Arg-max of the summed normalised scores over `pods`. */
  best(pods: readonly number[], rng: Splitmix32): number {
    const q = normalisedLowerIsBetter(pods, this.view.waiting);
    const kv = normalisedLowerIsBetter(pods, this.view.kvUsage);
    let top = -Infinity;
    const ties: number[] = [];
    pods.forEach((pod, i) => {
      const score = q[i] + kv[i];
      if (score > top) {
        top = score;
        ties.length = 0;
      }
      if (score === top) ties.push(pod);
    });
    return ties[Math.floor(rng.next() * ties.length)];
  }
}

/** (max - v) / (max - min) per pod; 1 for every pod when all are equal. */
export function normalisedLowerIsBetter(pods: readonly number[], values: Float64Array): number[] {
  let min = Infinity;
  let max = -Infinity;
  for (const pod of pods) {
    min = Math.min(min, values[pod]);
    max = Math.max(max, values[pod]);
  }
  return pods.map((pod) => (max > min ? (max - values[pod]) / (max - min) : 1));
}

/** The seed's optimizer parameters (its EndpointPickerConfig defaults). */
export const SEED_PARAMS = Object.freeze({
  ttftWeight: 0.8,
  tpotWeight: 0.2,
  transferOverheadMs: 5,
  sloBufferFactor: 0.9,
  negativeHeadroomProb: 0.01,
});

/** The seed's fallback heuristics, which it uses when no predictor service answers (its MVP setting). */
export const seedHeuristics = {
  /** ~0.5 ms per prompt token, whatever the prefill pod. */
  prefillTtftMs: (inputTokens: number) => inputTokens * 0.5,
  /** ~10 ms per request waiting on the decode pod; 10 ms without metrics. */
  decodeTtftMs: (m: { waiting: number } | undefined) => (m === undefined ? 10 : m.waiting * 10),
  /** 20 ms + 5 ms per running request + 10 ms x KV usage (a fraction) on the decode pod. */
  decodeTpotMs: (m: { running: number; kvUsage: number } | undefined) => 20 + (m === undefined ? 0 : m.running * 5 + m.kvUsage * 10),
};

/**
 * The seed's pd-slo-pair-optimizer as written, with its heuristic predictors: every (prefill, decode)
 * pair from the last scrapes only (no in-flight accounting), TTFT = prefill + decode wait + a constant
 * 5 ms transfer, headrooms against 0.9 x the SLOs, positive when both are > 0; with probability
 * 1 - 0.01 a weighted draw among positive pairs (weight = blended - min + 1, "most"), else (or when
 * none is positive) among the negative ones with the same weights. If the 1 % exploration finds no
 * negative pair the seed returns nothing and the gateway's other scorers decide: here, a uniform pair.
 * It never prefills locally: its pdThreshold (5 tokens) is below every prompt these workloads draw.
 */
export class SeedPdSloPolicy extends ScrapedPolicy {
  readonly name = "seed-pd-slo";

  pick(req: SimRequest): Placement {
    const rng = new Splitmix32(req.seed);
    const p = SEED_PARAMS;
    const ttftBudget = req.sloTtftMs * p.sloBufferFactor;
    const tpotBudget = req.sloTpotMs * p.sloBufferFactor;
    const prefillTtft = seedHeuristics.prefillTtftMs(req.inputTokens);
    const positive: { pair: Placement; blended: number }[] = [];
    const negative: { pair: Placement; blended: number }[] = [];
    for (const pf of this.roles.prefill) {
      for (const d of this.roles.decode) {
        const m = this.view.seen[d] ? { waiting: this.view.waiting[d], running: this.view.running[d], kvUsage: this.view.kvUsage[d] } : undefined;
        const ttft = prefillTtft + seedHeuristics.decodeTtftMs(m) + p.transferOverheadMs;
        const hTtft = ttftBudget - ttft;
        const hTpot = tpotBudget - seedHeuristics.decodeTpotMs(m);
        const blended = p.ttftWeight * hTtft + p.tpotWeight * hTpot;
        (hTtft > 0 && hTpot > 0 ? positive : negative).push({ pair: { prefill: pf, decode: d }, blended });
      }
    }
    const u = rng.next();
    if (positive.length > 0 && u >= p.negativeHeadroomProb) return weightedDraw(positive, rng.next());
    if (negative.length > 0) return weightedDraw(negative, rng.next());
    const all = [...positive, ...negative];
    return all[Math.floor(rng.next() * all.length)].pair;
  }
}

/** The seed's selectPairWeightedRandom: weight = blended - min + 1, the first pair whose cumulative weight reaches u x total. */
export function weightedDraw(pairs: readonly { pair: Placement; blended: number }[], u: number): Placement {
  if (pairs.length === 1) return pairs[0].pair;
  let min = Infinity;
  for (const p of pairs) min = Math.min(min, p.blended);
  let total = 0;
  for (const p of pairs) total += p.blended - min + 1;
  const target = u * total;
  let cumulative = 0;
  for (const p of pairs) {
    cumulative += p.blended - min + 1;
    if (target <= cumulative) return p.pair;
  }
  return pairs[pairs.length - 1].pair;
}

/**
 * A reference, not a deployable policy: it sees every pod's true state at the instant of the pick (no
 * scrape, no delay) and sends the prompt to the prefill pod with the least work ahead and the request to
 * the decode pod with the least KV reserved (then the fewest waiting). It bounds what placement
 * alone can achieve without SLO awareness.
 */
export class OmniscientPolicy implements Policy {
  readonly name = "omniscient";
  private readonly roles: { prefill: number[]; decode: number[] };

  constructor(private readonly ctx: PolicyContext) {
    this.roles = roles(ctx.pods);
  }

  observe(): void {}

  pick(): Placement {
    const truth = this.ctx.truth;
    let prefill = this.roles.prefill[0];
    let least = Infinity;
    for (const p of this.roles.prefill) {
      const w = truth.workAheadMs(p);
      if (w < least) {
        least = w;
        prefill = p;
      }
    }
    let decode = this.roles.decode[0];
    let best = Infinity;
    for (const d of this.roles.decode) {
      const g = truth.gauges(d);
      const score = g.kvUsage + g.waiting * 1e-6;
      if (score < best) {
        best = score;
        decode = d;
      }
    }
    return { prefill, decode };
  }

  complete(): void {}
}
