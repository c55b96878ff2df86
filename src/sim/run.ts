// One simulation run: a scenario's workload at one offered rate through one policy, in virtual time.
// Every `scrape.intervalMs` the policy receives each pod's gauges as they were `scrape.delayMs` earlier
// (the same scrapes for every policy); scrapes land half an interval after the engine's snapshot
// refreshes, the average phase of a scraper that is not synchronised with them. Requests are
// dispatched at their arrival (scheduling takes no virtual time); after the last arrival the run goes
// on until every request is done or `drainMs` has passed. A request its decode pod cannot hold fails at
// dispatch (SimCluster.dispatch) and is counted as failed.

import { ManualClock } from "../clock.js";
import type { PodMetrics } from "../pods/types.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import { loadProfiles, nominalCapacity, type Capacity } from "./capacity.js";
import { HEADROOM_VARIANTS, HeadroomPolicy } from "./headroom.js";
import { SimCluster, type Job, type Placement } from "./pods.js";
import { OmniscientPolicy, QueueKvPolicy, RandomPolicy, RoundRobinPolicy, SeedPdSloPolicy, type Policy, type PolicyContext } from "./policies.js";
import type { Scenario } from "./scenario.js";
import { generateWorkload, type SimRequest, type TraceRow } from "./workload.js";

export const BASELINES = ["random", "round-robin", "queue-kv", "seed-pd-slo"] as const;
/** Not deployable: a bound on placement with perfect, instant knowledge of the pods. */
export const REFERENCES = ["omniscient"] as const;
export const POLICY_NAMES: readonly string[] = [...BASELINES, ...Object.keys(HEADROOM_VARIANTS), ...REFERENCES];

export function createPolicy(name: string, ctx: PolicyContext): Policy {
  switch (name) {
    case "random":
      return new RandomPolicy(ctx);
    case "round-robin":
      return new RoundRobinPolicy(ctx);
    case "queue-kv":
      return new QueueKvPolicy(ctx);
    case "seed-pd-slo":
      return new SeedPdSloPolicy(ctx);
    case "omniscient":
      return new OmniscientPolicy(ctx);
  }
  const variant = HEADROOM_VARIANTS[name];
  if (variant === undefined) throw new RangeError(`unknown policy ${name} (known: ${POLICY_NAMES.join(", ")})`);
  return new HeadroomPolicy(ctx, variant);
}

/** What happened to one request. */
export interface RequestRecord {
  req: SimRequest;
  /** false: the policy placed it nowhere. */
  routed: boolean;
  /** The cluster refused it: its ISL + OSL exceed the decode pod's KV capacity. */
  failed: boolean;
  completed: boolean;
  prefill: number;
  decode: number;
  ttftMs: number;
  /** NaN for a one-token output (no time per output token). */
  tpotMs: number;
  predicted?: Placement["predicted"];
  job?: Job;
}

export interface RunOptions {
  scenario: Scenario;
  policy: string;
  rateRps: number;
  profiles?: ReadonlyMap<string, LatencyProfile>;
  capacity?: Capacity;
  trace?: readonly TraceRow[];
  /** Called at every delivered scrape with the gauges the policy received (tests). */
  onScrape?: (pod: number, metrics: PodMetrics, deliveredAtMs: number) => void;
}

export interface RunOutput {
  records: RequestRecord[];
  /** Virtual time at the end of the run. */
  endMs: number;
  policyStats: Record<string, number>;
}

export function simulate(options: RunOptions): RunOutput {
  const { scenario } = options;
  const profiles = options.profiles ?? loadProfiles(scenario);
  const capacity = options.capacity ?? nominalCapacity(scenario, profiles, options.trace);
  const requests = generateWorkload(scenario, options.rateRps, options.trace);
  const clock = new ManualClock(0);
  const records: RequestRecord[] = requests.map((req) => ({ req, routed: false, failed: false, completed: false, prefill: -1, decode: -1, ttftMs: NaN, tpotMs: NaN }));
  let policy: Policy | null = null;
  const sim = new SimCluster({
    scenario,
    profiles,
    clock,
    onComplete: (job: Job) => {
      const record = records[job.req.index];
      record.completed = true;
      record.ttftMs = job.firstTokenMs! - job.req.arrivalMs;
      record.tpotMs = job.req.outputTokens > 1 ? (job.doneMs! - job.firstTokenMs!) / (job.req.outputTokens - 1) : NaN;
      policy!.complete(job);
    },
  });
  const ctx: PolicyContext = { scenario, pods: sim.pods, clock, profiles, capacity, truth: sim };
  policy = createPolicy(options.policy, ctx);
  const p = policy;
  const pods = sim.pods.length;
  const { intervalMs, delayMs } = scenario.cluster.scrape;
  const deliver = (gauges: PodMetrics[]) => {
    const now = clock.nowMs();
    for (let i = 0; i < pods; i++) {
      p.observe(i, gauges[i]);
      options.onScrape?.(i, gauges[i], now);
    }
  };
  const sample = (): PodMetrics[] => {
    const now = clock.nowMs();
    return sim.pods.map((_, i) => ({ scrapedAtMs: now, ...sim.gauges(i) }));
  };
  // The idle cluster's first scrape, so every policy starts with every pod known.
  deliver(sample());
  p.ready?.();
  let stopped = false;
  const phaseMs = intervalMs / 2;
  const scrape = () => {
    if (stopped) return;
    const gauges = sample();
    clock.schedule(delayMs, () => {
      if (!stopped) deliver(gauges);
    });
    clock.schedule(intervalMs, scrape);
  };
  clock.schedule(Math.max(0, phaseMs - delayMs), scrape);

  for (const record of records) {
    clock.advanceTo(record.req.arrivalMs);
    const placement = p.pick(record.req);
    if (placement === null) continue;
    record.routed = true;
    record.prefill = placement.prefill;
    record.decode = placement.decode;
    record.predicted = placement.predicted;
    record.job = sim.dispatch(record.req, placement);
    if (record.job.failedMs !== undefined) {
      record.failed = true;
      p.fail?.(record.job);
    }
  }
  const lastArrival = requests.length > 0 ? requests[requests.length - 1].arrivalMs : 0;
  const deadline = Math.max(lastArrival, scenario.durationMs) + scenario.drainMs;
  while (sim.pending > 0 && clock.nextDueMs() <= deadline) clock.advanceTo(clock.nextDueMs());
  stopped = true;
  const endMs = clock.nowMs();
  const policyStats = p.stats?.() ?? {};
  p.close?.();
  return { records, endMs, policyStats };
}

export interface RunSummary {
  /** Requests scored: those arriving at or after warmupMs. */
  requests: number;
  completed: number;
  unfinished: number;
  unrouted: number;
  /** Refused at dispatch: larger than the decode pod's KV capacity. */
  failed: number;
  /**
   * Fraction meeting both SLOs (unfinished, unrouted and failed requests miss); NaN, like the
   * percentiles, when no request was scored: nothing was measured, which is neither 0 % nor 100 %.
   */
  attainment: number;
  /** Fraction whose first token came within the TTFT target, finished or not. */
  ttftAttainment: number;
  tpotAttainment: number;
  byLevel: Record<string, number>;
  ttftP50Ms: number;
  ttftP90Ms: number;
  ttftP99Ms: number;
  tpotP50Ms: number;
  tpotP90Ms: number;
  tpotP99Ms: number;
  /**
   * Medians of actual minus predicted, over finished requests the policy predicted (NaN otherwise):
   * TTFT, its prefill part (dispatch to prefill done, remote prefills only) and TPOT. Positive: the
   * policy under-predicted.
   */
  ttftErrorP50Ms: number;
  prefillErrorP50Ms: number;
  tpotErrorP50Ms: number;
}

/** Nearest-rank percentile of sorted values; NaN for none. */
export function percentile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1];
}

/**
 * Whether a request met its TTFT target (its first token came in time, finished or not) and its TPOT
 * target (finished in time; a one-token output has no TPOT to miss).
 */
export function metSlo(r: RequestRecord): { ttft: boolean; tpot: boolean } {
  const firstTokenMs = r.job?.firstTokenMs;
  const ttft = firstTokenMs !== undefined && firstTokenMs - r.req.arrivalMs <= r.req.sloTtftMs;
  if (!r.completed) return { ttft, tpot: false };
  return { ttft, tpot: Number.isNaN(r.tpotMs) || r.tpotMs <= r.req.sloTpotMs };
}

export function summarize(records: readonly RequestRecord[], warmupMs: number): RunSummary {
  const scored = records.filter((r) => r.req.arrivalMs >= warmupMs);
  let met = 0;
  let metTtft = 0;
  let metTpot = 0;
  let completed = 0;
  let unrouted = 0;
  let failed = 0;
  const levels = new Map<string, { met: number; all: number }>();
  const ttft: number[] = [];
  const tpot: number[] = [];
  const ttftError: number[] = [];
  const prefillError: number[] = [];
  const tpotError: number[] = [];
  for (const r of scored) {
    if (!r.routed) unrouted++;
    if (r.failed) failed++;
    const ok = metSlo(r);
    const level = levels.get(r.req.sloLevel) ?? { met: 0, all: 0 };
    level.all++;
    if (ok.ttft) metTtft++;
    if (ok.tpot) metTpot++;
    if (ok.ttft && ok.tpot) {
      met++;
      level.met++;
    }
    levels.set(r.req.sloLevel, level);
    if (r.completed) {
      completed++;
      ttft.push(r.ttftMs);
      if (!Number.isNaN(r.tpotMs)) tpot.push(r.tpotMs);
      const p = r.predicted;
      if (p !== undefined) {
        ttftError.push(r.ttftMs - p.ttftMs);
        if (!Number.isNaN(r.tpotMs)) tpotError.push(r.tpotMs - p.tpotMs);
        if (r.prefill >= 0 && r.job !== undefined) prefillError.push(r.job.prefillDoneMs! - r.job.dispatchMs - p.prefillTtftMs);
      }
    }
  }
  const median = (xs: number[]) => percentile(Float64Array.from(xs).sort(), 0.5);
  const ttftSorted = Float64Array.from(ttft).sort();
  const tpotSorted = Float64Array.from(tpot).sort();
  // 0 / 0 is NaN: a run that scored nothing reports no attainment.
  const n = scored.length;
  return {
    requests: n,
    completed,
    unfinished: n - completed - unrouted - failed,
    unrouted,
    failed,
    attainment: met / n,
    ttftAttainment: metTtft / n,
    tpotAttainment: metTpot / n,
    byLevel: Object.fromEntries([...levels].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.met / Math.max(1, v.all)])),
    ttftP50Ms: percentile(ttftSorted, 0.5),
    ttftP90Ms: percentile(ttftSorted, 0.9),
    ttftP99Ms: percentile(ttftSorted, 0.99),
    tpotP50Ms: percentile(tpotSorted, 0.5),
    tpotP90Ms: percentile(tpotSorted, 0.9),
    tpotP99Ms: percentile(tpotSorted, 0.99),
    ttftErrorP50Ms: median(ttftError),
    prefillErrorP50Ms: median(prefillError),
    tpotErrorP50Ms: median(tpotError),
  };
}

/** Goodput: the largest swept rate whose attainment is at least `threshold` (0 when none is; NaN never is). */
export function goodput(points: readonly { rateRps: number; attainment: number }[], threshold = 0.9): number {
  let best = 0;
  for (const p of points) if (p.attainment >= threshold && p.rateRps > best) best = p.rateRps;
  return best;
}
