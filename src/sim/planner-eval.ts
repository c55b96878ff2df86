// The planner evaluation (SPEC.md §8): a daily-shaped load, compressed to simulated minutes, through
// the three default pools, each a simulated cluster whose workers come and go, under three allocations:
// - `static-peak`: the layout the pool's own sizing asks for at its peak rate, all the time;
// - `static-mean`: the layout it asks for at its mean rate, all the time;
// - `planner`: the pools' SLA planners (src/planner/, with their configured load predictors and the
//   shared GPU budget) deciding, applied through the `simulator` actuator: a new worker serves after a
//   start-up delay, a removed one takes no new requests and is released once it has finished its work.
// Placement inside a pool is the same for every allocation (the least-loaded active worker of each role,
// from the simulator's true state), so the comparison isolates how many workers each allocation runs.
// GPUs are counted while a worker starts, serves or drains.

import { Registry } from "prom-client";
import { ManualClock } from "../clock.js";
import { BUILTIN_PROFILE, DEFAULTS } from "../config/schema.js";
import { silentLogger } from "../log.js";
import { SimulatorActuator } from "../planner/actuators.js";
import type { ArimaSearcher } from "../planner/arima-search.js";
import { PLANNER_DEFAULTS, type PlannedPool } from "../planner/planner.js";
import { Planners } from "../planner/planners.js";
import { layoutCapacityPerS, layoutFor, sizeNeed, type SizingParams } from "../planner/sizing.js";
import type { Layout, PoolUtilization } from "../planner/types.js";
import { LatencyProfile } from "../predictors/latency-profile.js";
import { tpSpeedup } from "../predictors/profile.js";
import { SimCluster, type Job } from "./pods.js";
import { Rng } from "./random.js";
import { percentile } from "./run.js";
import { scenarioFrom } from "./scenario.js";
import { drawLength, type LengthSpec, type SimRequest } from "./workload.js";

export const ALLOCATIONS = ["static-peak", "static-mean", "planner"] as const;
export type Allocation = (typeof ALLOCATIONS)[number];

export interface PlannerEvalOptions {
  seed: number;
  /** Arrivals are generated for this long; GPU-hours are counted over it. */
  durationMs: number;
  /** One "day" of the load curve. */
  periodMs: number;
  /** Requests arriving earlier are served but not scored (every allocation starts cold). */
  warmupMs: number;
  /** After the last arrival the run goes on at most this long; requests still unfinished count as misses. */
  drainMs: number;
  /** The load's trough and peak as fractions of what the pool's largest layout serves. */
  troughFraction: number;
  peakFraction: number;
  /** A new worker serves this long after it is asked for (the planner assumes the same). */
  startupDelayMs: number;
  /** ISL and OSL: lognormal around each pool's expected lengths. */
  lengthSigma: number;
}

/** The full evaluation: two simulated days of 30 minutes each. */
export const PLANNER_EVAL_DEFAULTS: Readonly<PlannerEvalOptions> = Object.freeze({
  seed: 20251122,
  durationMs: 60 * 60_000,
  periodMs: 30 * 60_000,
  warmupMs: 2 * 60_000,
  drainMs: 2 * 60_000,
  troughFraction: 0.1,
  peakFraction: 0.75,
  startupDelayMs: PLANNER_DEFAULTS.startupDelayMs,
  lengthSigma: 0.5,
});

/** --quick: one day of 12 minutes. */
export const PLANNER_EVAL_QUICK: Readonly<PlannerEvalOptions> = Object.freeze({
  ...PLANNER_EVAL_DEFAULTS,
  durationMs: 12 * 60_000,
  periodMs: 12 * 60_000,
  warmupMs: 60_000,
});

/** One pool under one allocation. */
export interface PoolResult {
  pool: string;
  allocation: Allocation;
  requests: number;
  /** Scored requests meeting both the pool's TTFT and TPOT targets (unfinished ones miss). */
  attainment: number;
  gpuHours: number;
  meanGpus: number;
  peakGpus: number;
  ttftP99Ms: number;
  tpotP99Ms: number;
  unfinished: number;
  /** Workers started and released over the run. */
  started: number;
  released: number;
  /** The pool's load: mean and peak offered rate (requests/s) and the layouts sized for them. */
  meanRps: number;
  peakRps: number;
}

export interface PlannerEvalResult {
  options: PlannerEvalOptions;
  pools: PoolResult[];
  /** GPU-hours of every pool, and attainment over every pool's scored requests. */
  total: { allocation: Allocation; attainment: number; gpuHours: number; requests: number };
}

type WorkerState = "off" | "starting" | "active" | "draining";

interface Worker {
  /** Pod index in the pool's SimCluster. */
  pod: number;
  state: WorkerState;
  readyAtMs: number;
}

/** A pool's load curve and the static layouts sized for it. */
interface PoolLoad {
  pool: PlannedPool;
  meanRps: number;
  peakRps: number;
  phase: number;
  isl: LengthSpec;
  osl: LengthSpec;
  meanIsl: number;
  meanOsl: number;
  staticPeak: Layout;
  staticMean: Layout;
}

/** The rate at time t: trough at phase 0, peak half a period later. */
function rateAt(load: PoolLoad, o: PlannerEvalOptions, tMs: number): number {
  const trough = (load.peakRps * o.troughFraction) / o.peakFraction;
  const x = (1 - Math.cos(2 * Math.PI * (tMs / o.periodMs + load.phase))) / 2;
  return trough + (load.peakRps - trough) * x;
}

function sizingParams(pool: PlannedPool, tpEfficiency: number): SizingParams {
  return {
    tp: pool.tp,
    tpEfficiency,
    gpuMemoryUtilization: pool.gpuMemoryUtilization,
    itlMs: pool.targets.tpotMs,
    bufferRatio: pool.planner.bufferRatio,
  };
}

function maxWorkers(pool: PlannedPool): number {
  return Math.max(1, Math.floor(pool.maxGpus / pool.tp));
}

/** The layout the pool's own sizing asks for at `ratePerS` (what its planner would decide from a perfect forecast). */
export function sizedLayout(pool: PlannedPool, profile: LatencyProfile, tpEfficiency: number, ratePerS: number, isl: number, osl: number): Layout {
  const need = sizeNeed(profile, sizingParams(pool, tpEfficiency), { ratePerS, isl, osl });
  return layoutFor(need, maxWorkers(pool), pool.planner.costOptimization).layout;
}

/** Each pool's load: its peak a fraction of what its largest layout serves; phases spread over the day. */
function poolLoads(pools: readonly PlannedPool[], profile: LatencyProfile, o: PlannerEvalOptions): PoolLoad[] {
  const tpEfficiency = DEFAULTS.predictors.tpEfficiency;
  const lognormalMean = Math.exp((o.lengthSigma * o.lengthSigma) / 2);
  return pools.map((pool, i) => {
    const isl = { median: pool.expected.isl, sigma: o.lengthSigma, min: 16, max: 16_384 };
    const osl = { median: pool.expected.osl, sigma: o.lengthSigma, min: 2, max: 2048 };
    const meanIsl = isl.median * lognormalMean;
    const meanOsl = osl.median * lognormalMean;
    const largest = sizedLayout(pool, profile, tpEfficiency, 1e6, meanIsl, meanOsl);
    const need = sizeNeed(profile, sizingParams(pool, tpEfficiency), { ratePerS: 1, isl: meanIsl, osl: meanOsl });
    const peakRps = o.peakFraction * layoutCapacityPerS(largest, need.capacity, meanIsl, meanOsl);
    const troughRps = (peakRps * o.troughFraction) / o.peakFraction;
    const meanRps = (peakRps + troughRps) / 2;
    return {
      pool,
      meanRps,
      peakRps,
      phase: i / pools.length,
      isl,
      osl,
      meanIsl,
      meanOsl,
      staticPeak: sizedLayout(pool, profile, tpEfficiency, peakRps, meanIsl, meanOsl),
      staticMean: sizedLayout(pool, profile, tpEfficiency, meanRps, meanIsl, meanOsl),
    };
  });
}

/** Arrivals of one pool: a Poisson process at the curve's peak, thinned to the curve (seeded per pool). */
function poolRequests(load: PoolLoad, o: PlannerEvalOptions): SimRequest[] {
  const name = load.pool.name;
  const gaps = Rng.stream(o.seed, `${name}-arrivals`);
  const keep = Rng.stream(o.seed, `${name}-thinning`);
  const lengths = Rng.stream(o.seed, `${name}-lengths`);
  const out: SimRequest[] = [];
  for (let t = gaps.exponential(1000 / load.peakRps); t < o.durationMs; t += gaps.exponential(1000 / load.peakRps)) {
    if (keep.next() * load.peakRps >= rateAt(load, o, t)) continue;
    out.push({
      id: `${name}-${out.length}`,
      index: out.length,
      arrivalMs: t,
      inputTokens: drawLength(lengths, load.isl),
      outputTokens: drawLength(lengths, load.osl),
      sloLevel: load.pool.sloLevel,
      sloTtftMs: load.pool.targets.ttftMs,
      sloTpotMs: load.pool.targets.tpotMs,
      seed: out.length,
    });
  }
  return out;
}

/** One pool's simulated workers: a prefill and a decode slot per worker the pool may run. */
class PoolFleet {
  readonly sim: SimCluster;
  readonly prefill: Worker[];
  readonly decode: Worker[];
  started = 0;
  released = 0;
  private gpuMs = 0;
  private peakGpus = 0;
  private lastAccountMs = 0;
  /** One mean prompt's prefill on a worker of the pool. */
  private readonly localPrefillMs: number;

  constructor(
    readonly load: PoolLoad,
    private readonly clock: ManualClock,
    private readonly o: PlannerEvalOptions,
    onComplete: (job: Job) => void,
  ) {
    const pool = load.pool;
    const slots = maxWorkers(pool);
    const scenario = scenarioFrom({
      name: `planner-${pool.name}`,
      seed: o.seed,
      durationMs: o.durationMs,
      warmupMs: 0,
      drainMs: o.drainMs,
      workload: {
        arrivals: { process: "poisson" },
        inputTokens: load.isl,
        outputTokens: load.osl,
        sloMix: [{ level: pool.sloLevel, share: 1, ttftMs: pool.targets.ttftMs, tpotMs: pool.targets.tpotMs }],
      },
      cluster: {
        gpuMemoryUtilization: pool.gpuMemoryUtilization,
        prefillTokenBudget: 8192,
        transferOverheadMs: 1,
        bandwidthGBps: { node: 450, rack: 50, cross: 12.5 },
        scrape: { intervalMs: 100, delayMs: 20 },
        pods: [
          { name: "p", count: slots, role: "prefill", tp: pool.tp },
          { name: "d", count: slots, role: "decode", tp: pool.tp },
        ],
      },
      policies: ["planner"],
      rates: { from: 1, to: 1, step: 1 },
    });
    const profile = LatencyProfile.shipped(BUILTIN_PROFILE);
    this.sim = new SimCluster({ scenario, profiles: new Map([[BUILTIN_PROFILE, profile]]), clock, onComplete });
    const meanIsl = load.isl.median * Math.exp((load.isl.sigma * load.isl.sigma) / 2);
    this.localPrefillMs = profile.prefillMs(meanIsl) / tpSpeedup(pool.tp, scenario.cluster.tpEfficiency);
    this.prefill = Array.from({ length: slots }, (_, i) => ({ pod: i, state: "off", readyAtMs: 0 }));
    this.decode = Array.from({ length: slots }, (_, i) => ({ pod: slots + i, state: "off", readyAtMs: 0 }));
  }

  /** Prefill workers and decode-capable workers (decode + both) as the layout asks; `immediately` skips the start-up delay. */
  apply(layout: Layout, immediately = false): void {
    this.account();
    this.resize(this.prefill, layout.prefill, immediately);
    this.resize(this.decode, layout.decode + layout.both, immediately);
  }

  /** Starting workers become active, empty draining ones are released; GPUs are counted up to now. */
  step(): void {
    this.account();
    const t = this.clock.nowMs();
    for (const w of [...this.prefill, ...this.decode]) {
      if (w.state === "starting" && t >= w.readyAtMs) w.state = "active";
      if (w.state === "draining") {
        const g = this.sim.gauges(w.pod);
        if (g.waiting === 0 && g.running === 0) {
          w.state = "off";
          this.released++;
        }
      }
    }
  }

  /** The least-loaded active workers: remote prefill when a prefill worker serves, local otherwise. */
  place(): { prefill: number; decode: number } | null {
    let decode = -1;
    let best = Infinity;
    for (const w of this.decode) {
      if (w.state !== "active") continue;
      const g = this.sim.gauges(w.pod);
      const score = g.kvUsage + g.waiting * 1e-6;
      if (score < best) {
        best = score;
        decode = w.pod;
      }
    }
    if (decode < 0) return null;
    let prefill = -1;
    let least = Infinity;
    for (const w of this.prefill) {
      if (w.state !== "active") continue;
      const ahead = this.sim.workAheadMs(w.pod);
      if (ahead < least) {
        least = ahead;
        prefill = w.pod;
      }
    }
    return { prefill, decode };
  }

  /**
   * What the engine tells a planner: queued prefill work over what the prefill-capable workers hold
   * within the TTFT target, and KV in use. Without prefill workers the decode workers prefill locally;
   * their queue is their waiting requests at the mean prompt's prefill time.
   */
  utilization(): PoolUtilization | undefined {
    let queueMs = 0;
    let prefillPods = 0;
    for (const w of this.prefill) {
      if (w.state !== "active") continue;
      prefillPods++;
      queueMs += this.sim.workAheadMs(w.pod);
    }
    const local = prefillPods === 0;
    let kvUsed = 0;
    let kvCapacity = 0;
    for (const w of this.decode) {
      if (w.state !== "active") continue;
      const g = this.sim.gauges(w.pod);
      kvUsed += g.kvUsage * g.kvCapacityTokens;
      kvCapacity += g.kvCapacityTokens;
      if (local) {
        prefillPods++;
        queueMs += g.waiting * this.localPrefillMs;
      }
    }
    if (prefillPods === 0 || kvCapacity === 0) return undefined;
    return {
      prefillQueueUtil: Math.min(1, queueMs / (prefillPods * this.load.pool.targets.ttftMs)),
      kvUtil: Math.min(1, kvUsed / kvCapacity),
    };
  }

  gpus(): number {
    const busy = [...this.prefill, ...this.decode].filter((w) => w.state !== "off").length;
    return busy * this.load.pool.tp;
  }

  /** GPU-hours over [0, durationMs], and the most GPUs held at once. */
  gpuUsage(): { gpuHours: number; peakGpus: number } {
    this.account();
    return { gpuHours: this.gpuMs / 3_600_000, peakGpus: this.peakGpus };
  }

  private account(): void {
    const t = Math.min(this.clock.nowMs(), this.o.durationMs);
    const gpus = this.gpus();
    if (t > this.lastAccountMs) this.gpuMs += gpus * (t - this.lastAccountMs);
    this.lastAccountMs = Math.max(this.lastAccountMs, t);
    this.peakGpus = Math.max(this.peakGpus, gpus);
  }

  private resize(workers: Worker[], wanted: number, immediately: boolean): void {
    const t = this.clock.nowMs();
    let serving = workers.filter((w) => w.state === "starting" || w.state === "active").length;
    // Fewer: cancel starting workers first (newest first), then drain the least-loaded active ones.
    for (const w of [...workers].reverse()) {
      if (serving <= wanted) break;
      if (w.state !== "starting") continue;
      w.state = "off";
      this.released++;
      serving--;
    }
    const active = workers.filter((w) => w.state === "active").sort((a, b) => this.workOf(a) - this.workOf(b));
    for (const w of active) {
      if (serving <= wanted) break;
      w.state = "draining";
      serving--;
    }
    // More: a draining worker comes back at once (it never left); otherwise an idle slot starts.
    for (const w of workers) {
      if (serving >= wanted) break;
      if (w.state !== "draining") continue;
      w.state = "active";
      serving++;
    }
    for (const w of workers) {
      if (serving >= wanted) break;
      if (w.state !== "off") continue;
      w.state = immediately ? "active" : "starting";
      w.readyAtMs = immediately ? t : t + this.o.startupDelayMs;
      this.started++;
      serving++;
    }
  }

  private workOf(w: Worker): number {
    const g = this.sim.gauges(w.pod);
    return g.waiting + g.running;
  }
}

interface Arrival {
  req: SimRequest;
  fleet: PoolFleet;
  job?: Job;
}

/** Runs every pool under one allocation; resolves once the run has drained. */
export async function evaluateAllocation(allocation: Allocation, o: PlannerEvalOptions, arimaSearcher?: ArimaSearcher): Promise<PlannerEvalResult> {
  const pools = DEFAULTS.pools as readonly PlannedPool[];
  const profile = LatencyProfile.shipped(BUILTIN_PROFILE);
  const loads = poolLoads(pools, profile, o);
  const clock = new ManualClock(0);
  const records: Arrival[] = [];
  let planners: Planners | null = null;
  const fleets = new Map<string, PoolFleet>();
  for (const load of loads) {
    const fleet = new PoolFleet(load, clock, o, (job) => {
      planners?.observeCompletion(load.pool.name, {
        ok: true,
        ttftMs: job.firstTokenMs! - job.req.arrivalMs,
        tpotMs: job.req.outputTokens > 1 ? (job.doneMs! - job.firstTokenMs!) / (job.req.outputTokens - 1) : undefined,
        inputTokens: job.req.inputTokens,
        outputTokens: job.req.outputTokens,
      });
    });
    fleets.set(load.pool.name, fleet);
    for (const req of poolRequests(load, o)) records.push({ req, fleet });
  }
  records.sort((a, b) => a.req.arrivalMs - b.req.arrivalMs);

  if (allocation === "planner") {
    const p = new Planners({
      pools,
      cluster: DEFAULTS.cluster,
      tpEfficiency: DEFAULTS.predictors.tpEfficiency,
      profile,
      clock,
      logger: silentLogger,
      registry: new Registry(),
      utilization: (pool) => fleets.get(pool)?.utilization(),
      actuator: new SimulatorActuator({ apply: (pool, layout) => fleets.get(pool)?.apply(layout) }),
      tuning: { startupDelayMs: o.startupDelayMs },
      arima: arimaSearcher === undefined ? undefined : { searcher: arimaSearcher },
    });
    planners = p;
    // The run starts in steady state: each pool runs what its sizing asks for at the load of the moment.
    for (const fleet of fleets.values()) {
      const l = fleet.load;
      fleet.apply(sizedLayout(l.pool, profile, DEFAULTS.predictors.tpEfficiency, rateAt(l, o, 0), l.meanIsl, l.meanOsl), true);
    }
    p.start();
  } else {
    for (const fleet of fleets.values()) fleet.apply(allocation === "static-peak" ? fleet.load.staticPeak : fleet.load.staticMean, true);
  }

  // Each simulated second: workers start and drain, decisions (ARIMA searches, actuations) settle.
  const second = async () => {
    for (const fleet of fleets.values()) fleet.step();
    await planners?.settled();
  };
  let nextSecond = 1000;
  const advanceTo = async (tMs: number) => {
    while (nextSecond <= tMs) {
      clock.advanceTo(nextSecond);
      nextSecond += 1000;
      await second();
    }
    clock.advanceTo(tMs);
  };
  try {
    for (const record of records) {
      await advanceTo(record.req.arrivalMs);
      planners?.observeArrival(record.fleet.load.pool.name);
      const placement = record.fleet.place();
      if (placement !== null) record.job = record.fleet.sim.dispatch(record.req, placement);
    }
    const deadline = o.durationMs + o.drainMs;
    const pending = () => [...fleets.values()].some((f) => f.sim.pending > 0);
    await advanceTo(o.durationMs);
    while (pending() && nextSecond <= deadline) await advanceTo(nextSecond);
  } finally {
    planners?.close();
  }
  return summarizeRun(allocation, o, loads, fleets, records);
}

function summarizeRun(allocation: Allocation, o: PlannerEvalOptions, loads: PoolLoad[], fleets: Map<string, PoolFleet>, records: Arrival[]): PlannerEvalResult {
  const pools: PoolResult[] = [];
  let met = 0;
  let scored = 0;
  let gpuHours = 0;
  for (const load of loads) {
    const fleet = fleets.get(load.pool.name)!;
    const mine = records.filter((r) => r.fleet === fleet && r.req.arrivalMs >= o.warmupMs);
    const ttft: number[] = [];
    const tpot: number[] = [];
    let ok = 0;
    let unfinished = 0;
    for (const r of mine) {
      const job = r.job;
      if (job?.doneMs === undefined) {
        unfinished++;
        continue;
      }
      const ttftMs = job.firstTokenMs! - job.req.arrivalMs;
      const tpotMs = job.req.outputTokens > 1 ? (job.doneMs - job.firstTokenMs!) / (job.req.outputTokens - 1) : NaN;
      ttft.push(ttftMs);
      if (!Number.isNaN(tpotMs)) tpot.push(tpotMs);
      if (ttftMs <= r.req.sloTtftMs && (Number.isNaN(tpotMs) || tpotMs <= r.req.sloTpotMs)) ok++;
    }
    const usage = fleet.gpuUsage();
    pools.push({
      pool: load.pool.name,
      allocation,
      requests: mine.length,
      attainment: mine.length > 0 ? ok / mine.length : 1,
      gpuHours: usage.gpuHours,
      meanGpus: (usage.gpuHours * 3_600_000) / o.durationMs,
      peakGpus: usage.peakGpus,
      ttftP99Ms: percentile(Float64Array.from(ttft).sort(), 0.99),
      tpotP99Ms: percentile(Float64Array.from(tpot).sort(), 0.99),
      unfinished,
      started: fleet.started,
      released: fleet.released,
      meanRps: load.meanRps,
      peakRps: load.peakRps,
    });
    met += ok;
    scored += mine.length;
    gpuHours += usage.gpuHours;
  }
  return { options: o, pools, total: { allocation, attainment: scored > 0 ? met / scored : 1, gpuHours, requests: scored } };
}

/** The static layouts each pool gets (for the report). */
export function staticLayouts(o: PlannerEvalOptions): { pool: string; meanRps: number; peakRps: number; staticPeak: Layout; staticMean: Layout }[] {
  const profile = LatencyProfile.shipped(BUILTIN_PROFILE);
  return poolLoads(DEFAULTS.pools as readonly PlannedPool[], profile, o).map((l) => ({
    pool: l.pool.name,
    meanRps: l.meanRps,
    peakRps: l.peakRps,
    staticPeak: l.staticPeak,
    staticMean: l.staticMean,
  }));
}
