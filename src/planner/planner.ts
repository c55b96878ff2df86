// One pool's SLA planner (SPEC.md §6). Every adjustment interval it closes the interval's observations,
// teaches its load predictors, sizes the pool from the profile for the predicted (proactive) or observed
// (reactive) load, applies the pool's SLO behaviours (forced step-ups, one-step scale-down after a
// cooldown), asks the planners for its share of the GPU budget and hands a changed layout to its actuator.

import type { Gauge } from "prom-client";
import type { Clock } from "../clock.js";
import { ConfigError, messageOf } from "../errors.js";
import { OncePerCause, type Logger } from "../log.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import { tpSpeedup } from "../predictors/profile.js";
import type { ApplyState, DecisionApplier } from "./actuators.js";
import type { LoadForecaster, LoadPredictorKind } from "./load-predictors.js";
import type { PlannerMetrics } from "./metrics.js";
import { OBSERVER_DEFAULTS, PoolObserver } from "./observations.js";
import { fitToCap, layoutFor, NO_CORRECTION, sizeNeed, type Corrections, type Load, type Need, type SizingParams } from "./sizing.js";
import {
  sameLayout,
  scaleRequestOf,
  START_LAYOUT,
  totalWorkers,
  WORKER_ROLES,
  type Decision,
  type DecisionReason,
  type IntervalObservation,
  type Layout,
  type PoolUtilization,
  type PoolUtilizationSource,
} from "./types.js";

/** The planner section of a pool (src/config/schema.ts). */
export interface PlannerSettings {
  readonly adjustmentIntervalMs: number;
  readonly scaleUpThreshold: number;
  readonly bufferRatio: number;
  readonly percentile: number;
  readonly violationsAllowed: number;
  readonly loadPredictor: LoadPredictorKind;
  readonly proactive: boolean;
  readonly burstProtection: boolean;
  readonly costOptimization: boolean;
}

/** The parts of a configured pool a planner reads. */
export interface PlannedPool {
  readonly name: string;
  readonly sloLevel: string;
  readonly sloPriority: number;
  readonly description: string;
  readonly targets: Readonly<{ ttftMs: number; tpotMs: number }>;
  readonly expected: Readonly<{ isl: number; osl: number }>;
  readonly tp: number;
  readonly maxGpus: number;
  readonly gpuMemoryUtilization: number;
  readonly planner: PlannerSettings;
}

/** Planner options the configuration does not carry (yet); see PLANNER_DEFAULTS. */
export interface PlannerTuning {
  /** A scale-down waits this long after the last change (half as long under cost optimisation). */
  cooldownMs: number;
  /**
   * A scale-down also needs the sized target to have been lower at every interval within this window
   * (half as long under cost optimisation), as Kubernetes' HPA stabilises: a load hovering at a
   * worker boundary does not remove and re-add a worker every other interval. Absent: cooldownMs.
   */
  scaleDownWindowMs: number;
  /** After a scale-up, forced step-ups wait this long for the new workers to start. */
  startupDelayMs: number;
  /** Burst protection compares the short-window arrival rate this often… */
  burstCheckMs: number;
  /** …over arrivals in this window. */
  burstWindowMs: number;
  /** A burst is a short-window rate above the predicted rate x burstFactor… */
  burstFactor: number;
  /** …over at least this many arrivals in the window. */
  burstMinArrivals: number;
  /** Completions an interval needs before its latencies and violation rate drive decisions. */
  minSamples: number;
  /** Bounds of the observed/predicted latency corrections (the prefill one is also capped at 1). */
  correctionMin: number;
  correctionMax: number;
  /** Decisions kept per pool for `GET /v1/planner`. */
  decisionsKept: number;
}

export const PLANNER_DEFAULTS = Object.freeze({
  /** cooldownMs defaults to this many adjustment intervals. */
  cooldownIntervals: 2,
  /** A vLLM worker of an 8B model takes about a minute to load its weights and warm up. */
  startupDelayMs: 60_000,
  burstCheckMs: 1000,
  burstWindowMs: OBSERVER_DEFAULTS.burstWindowMs,
  burstFactor: 1.5,
  burstMinArrivals: 10,
  minSamples: 10,
  correctionMin: 0.5,
  correctionMax: 2,
  decisionsKept: 20,
});

/** The tuning of one pool: PLANNER_DEFAULTS, then `overrides`, each checked. */
export function tuningFor(pool: PlannedPool, overrides: Partial<PlannerTuning> = {}): PlannerTuning {
  const cooldownMs = overrides.cooldownMs ?? PLANNER_DEFAULTS.cooldownIntervals * pool.planner.adjustmentIntervalMs;
  const t: PlannerTuning = {
    cooldownMs,
    // An invalid cooldown is reported below, once.
    scaleDownWindowMs: Number.isFinite(cooldownMs) && cooldownMs >= 0 ? cooldownMs : 0,
    startupDelayMs: PLANNER_DEFAULTS.startupDelayMs,
    burstCheckMs: PLANNER_DEFAULTS.burstCheckMs,
    burstWindowMs: PLANNER_DEFAULTS.burstWindowMs,
    burstFactor: PLANNER_DEFAULTS.burstFactor,
    burstMinArrivals: PLANNER_DEFAULTS.burstMinArrivals,
    minSamples: PLANNER_DEFAULTS.minSamples,
    correctionMin: PLANNER_DEFAULTS.correctionMin,
    correctionMax: PLANNER_DEFAULTS.correctionMax,
    decisionsKept: PLANNER_DEFAULTS.decisionsKept,
    ...overrides,
  };
  const problems: string[] = [];
  const check = (key: keyof PlannerTuning, ok: (v: number) => boolean, rule: string) => {
    if (!(Number.isFinite(t[key]) && ok(t[key]))) problems.push(`planner ${key}: must be ${rule}, got ${t[key]}`);
  };
  check("cooldownMs", (v) => v >= 0, "a number >= 0");
  check("scaleDownWindowMs", (v) => v >= 0, "a number >= 0");
  check("startupDelayMs", (v) => v >= 0, "a number >= 0");
  check("burstCheckMs", (v) => v >= 1, "a number >= 1");
  check("burstWindowMs", (v) => v >= 10, "a number >= 10");
  check("burstFactor", (v) => v >= 1, "a number >= 1");
  check("burstMinArrivals", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  check("minSamples", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  check("correctionMin", (v) => v > 0 && v <= 1, "a number > 0 and <= 1");
  check("correctionMax", (v) => v >= 1, "a number >= 1");
  check("decisionsKept", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  if (problems.length > 0) throw new ConfigError(problems);
  return t;
}

/** How long a scale-down waits after the last change: the tuning's cooldown, halved under cost optimisation. */
export function scaleDownCooldownMs(settings: Pick<PlannerSettings, "costOptimization">, tuning: Pick<PlannerTuning, "cooldownMs">): number {
  return settings.costOptimization ? tuning.cooldownMs / 2 : tuning.cooldownMs;
}

/** How long the sized target must have stayed lower before a scale-down: halved under cost optimisation too. */
export function scaleDownWindowMs(settings: Pick<PlannerSettings, "costOptimization">, tuning: Pick<PlannerTuning, "scaleDownWindowMs">): number {
  return settings.costOptimization ? tuning.scaleDownWindowMs / 2 : tuning.scaleDownWindowMs;
}

/** What a planner asks of the planners: the most workers it may run now that it wants `wantedWorkers`. */
export interface BudgetCoordinator {
  grant(planner: PoolPlanner): number;
}

export interface PoolPlannerOptions {
  pool: PlannedPool;
  profile: LatencyProfile;
  tpEfficiency: number;
  gpuHourPrice: number;
  tuning: PlannerTuning;
  clock: Clock;
  logger: Logger;
  metrics: PlannerMetrics;
  predictors: LoadForecaster;
  budget: BudgetCoordinator;
  /** Applies decisions; the planner sets its onApplied (see Planners). */
  applier: DecisionApplier;
  utilization?: PoolUtilizationSource;
}

export interface PoolPlannerState {
  pool: string;
  sloLevel: string;
  sloPriority: number;
  /** The SLO the pool is sized and its violations counted against. */
  targets: { ttftMs: number; tpotMs: number };
  tp: number;
  maxGpus: number;
  maxWorkers: number;
  settings: PlannerSettings;
  tuning: PlannerTuning;
  actuator: string;
  /** The last decision's layout: what the planner wants running. */
  desired: Layout & { gpus: number };
  /** The last layout an actuator confirmed, or read. */
  applied: Layout & { gpus: number };
  /**
   * Where the planner's idea of what runs comes from. `assumed`: the actuator cannot read it
   * (advisory, webhook), so the planner's own decisions, from one `both` worker at start. `unknown`:
   * the actuator can read it but has not yet; sizing waits for it. `read`: read at readAtMs, and
   * read again every interval while no decision is being applied.
   */
  running: { source: "assumed" | "unknown" | "read"; readAtMs: number | null; readError: string | null };
  /** The layout before the GPU budget. */
  wanted: Layout;
  lastTickMs: number | null;
  observation: IntervalObservation | null;
  load: { observed: Load; predicted: Load; sizedFor: "predicted" | "observed" } | null;
  predictors: Record<"rate" | "isl" | "osl", Record<string, unknown>>;
  corrections: Corrections;
  sizing: {
    prefillWorkers: number;
    decodeWorkers: number;
    prefillShare: number;
    decodeShare: number;
    prefillTokensPerSPerWorker: number;
    decodeTokensPerSPerWorker: number;
    decodeBatch: number;
  } | null;
  apply: ApplyState;
  lastSkip: { atMs: number; cause: string; message: string } | null;
  /** Newest first. */
  decisions: Decision[];
}

const fmt = (n: number, digits = 1) => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(digits));
const pct = (r: number) => `${(r * 100).toFixed(1)}%`;

function describeLayout(l: Layout): string {
  return `${l.prefill}P/${l.decode}D/${l.both}B`;
}

export class PoolPlanner {
  private plannedPool: PlannedPool;
  readonly observer: PoolObserver;
  readonly maxWorkers: number;
  private readonly o: PoolPlannerOptions;
  private readonly once: OncePerCause;
  private readonly sizing: SizingParams;
  private desired: Layout = { ...START_LAYOUT };
  private applied: Layout = { ...START_LAYOUT };
  private wanted: Layout = { ...START_LAYOUT };
  private lastChangeMs: number;
  private lastScaleUpMs = -Infinity;
  private lastAccountMs: number;
  private lastTickMs: number | null = null;
  private observation: IntervalObservation | null = null;
  private load: PoolPlannerState["load"] = null;
  private need: Need | null = null;
  private corrections: Corrections = { ...NO_CORRECTION };
  private predictedRate: number | undefined;
  private lastIsl: number;
  private lastOsl: number;
  private lastSkip: PoolPlannerState["lastSkip"] = null;
  private readonly decisions: Decision[] = [];
  /** The sized targets of the intervals within the scale-down window, oldest first. */
  private readonly recentTargets: { atMs: number; layout: Layout }[] = [];
  private running: PoolPlannerState["running"];
  private reading = false;
  /** Decisions made and layouts confirmed so far: a read that overlaps either is stale. */
  private changes = 0;

  constructor(options: PoolPlannerOptions) {
    this.o = options;
    this.plannedPool = options.pool;
    this.once = new OncePerCause(options.logger);
    this.maxWorkers = Math.max(1, Math.floor(this.pool.maxGpus / this.pool.tp));
    this.sizing = {
      tp: this.pool.tp,
      tpEfficiency: options.tpEfficiency,
      gpuMemoryUtilization: this.pool.gpuMemoryUtilization,
      itlMs: this.pool.targets.tpotMs,
      bufferRatio: this.pool.planner.bufferRatio,
    };
    this.observer = new PoolObserver({
      clock: options.clock,
      percentile: this.pool.planner.percentile,
      targets: this.pool.targets,
      burstWindowMs: options.tuning.burstWindowMs,
    });
    this.lastChangeMs = options.clock.nowMs();
    this.lastAccountMs = this.lastChangeMs;
    this.lastIsl = this.pool.expected.isl;
    this.lastOsl = this.pool.expected.osl;
    this.running = { source: options.applier.canRead ? "unknown" : "assumed", readAtMs: null, readError: null };
    this.publishLayouts();
  }

  get pool(): PlannedPool {
    return this.plannedPool;
  }

  get name(): string {
    return this.pool.name;
  }

  /**
   * A reloaded configuration's targets and description for this pool (the parts of a pool a reload
   * may change): sizing and the violation count use the new targets from the next interval on.
   */
  retarget(next: Pick<PlannedPool, "targets" | "description">): void {
    this.plannedPool = { ...this.plannedPool, targets: next.targets, description: next.description };
    this.sizing.itlMs = next.targets.tpotMs;
    this.observer.setTargets(next.targets);
  }

  /** Workers the pool would run without the budget. */
  get wantedWorkers(): number {
    return totalWorkers(this.wanted);
  }

  get desiredLayout(): Layout {
    return { ...this.desired };
  }

  get desiredGpus(): number {
    return totalWorkers(this.desired) * this.pool.tp;
  }

  /** The actuator confirmed `layout`. */
  confirm(layout: Layout): void {
    this.changes++;
    this.account(this.o.clock.nowMs());
    this.applied = { prefill: layout.prefill, decode: layout.decode, both: layout.both };
    this.publishLayouts();
  }

  /**
   * Asks an actuator that can read it what the pool runs now, and makes that the base of the next
   * decisions: after a restart, or when someone else changed the workers, the one-step scale-down,
   * the cooldown and the violation rules then apply to what actually runs. A read that overlaps a
   * decision or its application is dropped (what it saw is changing); one that fails is retried at
   * the next interval, and until one succeeds the planner does not size.
   */
  refresh(): void {
    if (!this.o.applier.canRead || this.reading || this.o.applier.state().status === "applying") return;
    this.reading = true;
    const changes = this.changes;
    this.o.applier.read().then(
      (layout) => this.afterRead(() => this.adopt(layout, changes)),
      (err: unknown) => this.afterRead(() => this.readFailed(messageOf(err))),
    );
  }

  /**
   * One adjustment interval. It runs on a timer, where an error would end the process: one is logged
   * and counted as a skipped interval instead, and the next interval starts afresh.
   */
  tick(): void {
    try {
      this.interval();
    } catch (err) {
      this.skip("error", `the interval failed: ${messageOf(err)}`);
    }
  }

  private interval(): void {
    const now = this.o.clock.nowMs();
    this.lastTickMs = now;
    // The prediction is published when this interval makes one (loadForNext): an interval skipped
    // before it, or failing, has none and must not show the last interval's.
    this.removePredicted();
    let utilization: PoolUtilization | undefined;
    let utilizationError: string | undefined;
    if (this.o.utilization !== undefined) {
      try {
        utilization = this.o.utilization(this.pool.name);
      } catch (err) {
        utilizationError = messageOf(err);
      }
    }
    const obs = this.observer.drain(utilization);
    if (obs.clampedLatencies > 0) {
      this.once.fail(`planner-latency:${this.pool.name}`, "clamped", "completion reports with a TTFT or TPOT over an hour were counted as one hour", {
        pool: this.pool.name,
        reports: obs.clampedLatencies,
      });
    }
    this.account(now);
    this.observation = obs;
    this.publishObservation(obs);
    this.learn(obs);
    try {
      this.size(obs, utilization, utilizationError, now);
    } finally {
      // A decision the actuator failed to apply is tried again every interval, sized or skipped.
      if (this.o.applier.state().status === "failed") this.o.applier.retry();
      this.refresh();
    }
  }

  private size(obs: IntervalObservation, utilization: PoolUtilization | undefined, utilizationError: string | undefined, now: number): void {
    if (this.running.source === "unknown") {
      const why = this.running.readError === null ? "the actuator has not answered yet" : `reading it failed: ${this.running.readError}`;
      return this.skip("layout_unknown", `what the pool runs is not known: ${why}`);
    }
    if (utilizationError !== undefined) return this.skip("utilization_error", `reading pod utilization failed: ${utilizationError}`);
    // Without pods to read (none eligible on a side), the load and the violations still size the pool:
    // only the utilization step-ups wait for utilization to come back.
    const utilizationSubject = `planner-utilization:${this.pool.name}`;
    if (this.o.utilization !== undefined && utilization === undefined) {
      this.once.fail(utilizationSubject, "missing", "no pod utilization for the pool; sizing from load and violations, without utilization step-ups", { pool: this.pool.name });
    } else this.once.clear(utilizationSubject, "pod utilization for the pool again", { pool: this.pool.name });
    if (utilization !== undefined && !(isUnit(utilization.prefillQueueUtil) && isUnit(utilization.kvUtil))) {
      return this.skip("utilization_invalid", `pod utilization is not a number in [0, 1]: ${JSON.stringify(utilization)}`);
    }
    const load = this.loadForNext(obs);
    if (!(Number.isFinite(load.ratePerS) && Number.isFinite(load.isl) && Number.isFinite(load.osl))) {
      return this.skip("load_invalid", `load is not a number: ${JSON.stringify(load)}`);
    }
    this.corrections = this.correctionsFrom(obs);
    const need = sizeNeed(this.o.profile, this.sizing, load, this.corrections);
    // Lengths beyond anything the profile can say (no load at an absurd ISL is 0 / 0).
    if (Number.isNaN(need.prefillShare) || Number.isNaN(need.decodeShare)) {
      return this.skip("load_invalid", `the load gives no worker count: ${JSON.stringify(load)}`);
    }
    this.once.clear(this.subject, "planner sizing again", { pool: this.pool.name });
    this.need = need;
    const choice = layoutFor(need, this.maxWorkers, this.pool.planner.costOptimization);
    const { next, reason, details } = this.behave(choice.layout, this.scaleDownFloor(load, choice.layout), obs, utilization, now, need);
    this.conclude(next, reason, details, need);
  }

  /** Burst protection: scales up at once when the short-window arrival rate jumps past the prediction. */
  burstCheck(): void {
    if (!this.pool.planner.burstProtection) return;
    try {
      this.checkBurst();
      this.once.clear(`planner-burst:${this.pool.name}`, "planner burst check works again", { pool: this.pool.name });
    } catch (err) {
      // On a timer like tick(); logged once per cause, and the next check runs as usual.
      this.failQuietly(`planner-burst:${this.pool.name}`, "error", "planner burst check failed", { pool: this.pool.name, error: messageOf(err) });
    }
  }

  private checkBurst(): void {
    if (this.running.source === "unknown") return;
    const { ratePerS, arrivals, windowMs } = this.observer.shortWindow();
    if (arrivals < this.o.tuning.burstMinArrivals) return;
    const predicted = this.predictedRate ?? 0;
    if (ratePerS <= predicted * this.o.tuning.burstFactor) return;
    const need = sizeNeed(this.o.profile, this.sizing, { ratePerS, isl: this.lastIsl, osl: this.lastOsl }, this.corrections);
    const target = layoutFor(need, this.maxWorkers, this.pool.planner.costOptimization).layout;
    const next = fitToCap(maxLayout(this.desired, target), this.maxWorkers, need);
    if (!WORKER_ROLES.some((r) => next[r] > this.desired[r])) return;
    this.conclude(
      next,
      "burst",
      [
        `burst: ${fmt(ratePerS, 2)} req/s over the last ${fmt(windowMs / 1000)} s, above ${this.o.tuning.burstFactor} x the ${fmt(predicted, 2)} req/s predicted`,
        this.describeNeed(need),
      ],
      need,
    );
  }

  /** The budget now allows at most `cap` workers (a higher-priority pool needs GPUs). */
  yieldTo(cap: number, detail: string): void {
    // Not knowing what runs, the planner cannot say what to take away; its next interval yields.
    if (this.running.source === "unknown" || totalWorkers(this.desired) <= cap) return;
    this.decide(fitToCap(this.desired, cap, this.need ?? undefined), "budget", [detail]);
  }

  state(): PoolPlannerState {
    const n = this.need;
    return {
      pool: this.pool.name,
      sloLevel: this.pool.sloLevel,
      sloPriority: this.pool.sloPriority,
      targets: { ...this.pool.targets },
      tp: this.pool.tp,
      maxGpus: this.pool.maxGpus,
      maxWorkers: this.maxWorkers,
      settings: { ...this.pool.planner },
      tuning: { ...this.o.tuning },
      actuator: this.o.applier.actuatorKind,
      desired: { ...this.desired, gpus: totalWorkers(this.desired) * this.pool.tp },
      applied: { ...this.applied, gpus: totalWorkers(this.applied) * this.pool.tp },
      running: { ...this.running },
      wanted: { ...this.wanted },
      lastTickMs: this.lastTickMs,
      observation: this.observation,
      load: this.load,
      predictors: {
        rate: this.o.predictors.rate.describe(),
        isl: this.o.predictors.isl.describe(),
        osl: this.o.predictors.osl.describe(),
      },
      corrections: { ...this.corrections },
      sizing:
        n === null
          ? null
          : {
              prefillWorkers: n.prefillWorkers,
              decodeWorkers: n.decodeWorkers,
              prefillShare: n.prefillShare,
              decodeShare: n.decodeShare,
              prefillTokensPerSPerWorker: n.capacity.prefillTokensPerS,
              decodeTokensPerSPerWorker: n.capacity.decodeTokensPerS,
              decodeBatch: n.capacity.decodeBatch,
            },
      apply: this.o.applier.state(),
      lastSkip: this.lastSkip,
      decisions: [...this.decisions].reverse(),
    };
  }

  // ---- the interval ----

  private learn(obs: IntervalObservation): void {
    const { rate, isl, osl } = this.o.predictors;
    rate.observe(obs.ratePerS);
    if (obs.meanIsl !== undefined) {
      isl.observe(obs.meanIsl);
      this.lastIsl = obs.meanIsl;
    }
    if (obs.meanOsl !== undefined) {
      osl.observe(obs.meanOsl);
      this.lastOsl = obs.meanOsl;
    }
  }

  /**
   * The fewest workers a scale-down may leave: what the load just observed needs when the forecast is
   * below it, in rate, ISL or OSL (each the larger of the two). A forecast lags a falling load's turn
   * (ARIMA and the Kalman trend both overshoot it), and a worker taken away too early comes back only
   * after its start-up delay, with a backlog behind it.
   */
  private scaleDownFloor(sizedFor: Load, target: Layout): Layout {
    const observed = this.load?.observed;
    if (observed === undefined || !(observed.ratePerS > sizedFor.ratePerS || observed.isl > sizedFor.isl || observed.osl > sizedFor.osl)) return target;
    const larger: Load = {
      ratePerS: Math.max(observed.ratePerS, sizedFor.ratePerS),
      isl: Math.max(observed.isl, sizedFor.isl),
      osl: Math.max(observed.osl, sizedFor.osl),
    };
    const observedNeed = sizeNeed(this.o.profile, this.sizing, larger, this.corrections);
    return layoutFor(observedNeed, this.maxWorkers, this.pool.planner.costOptimization).layout;
  }

  private loadForNext(obs: IntervalObservation): Load {
    const { rate, isl, osl } = this.o.predictors;
    const observed: Load = { ratePerS: obs.ratePerS, isl: Math.max(1, this.lastIsl), osl: Math.max(1, this.lastOsl) };
    const predicted: Load = {
      ratePerS: rate.predict() ?? observed.ratePerS,
      isl: Math.max(1, isl.predict() ?? observed.isl),
      osl: Math.max(1, osl.predict() ?? observed.osl),
    };
    this.predictedRate = predicted.ratePerS;
    const sizedFor = this.pool.planner.proactive ? "predicted" : "observed";
    this.load = { observed, predicted, sizedFor };
    const m = this.o.metrics.predicted;
    const pool = this.pool.name;
    setOrRemove(m, { pool, quantity: "requests_per_second" }, finite(predicted.ratePerS));
    setOrRemove(m, { pool, quantity: "isl_tokens" }, finite(predicted.isl));
    setOrRemove(m, { pool, quantity: "osl_tokens" }, finite(predicted.osl));
    return sizedFor === "predicted" ? predicted : observed;
  }

  /**
   * Observed latency at the pool's percentile over what the profile predicts, clamped. Prefill: TTFT
   * over the compute of one prompt at the observed ISL, capped at 1 (TTFT also holds queueing, which
   * the step-ups answer; a ratio below 1 means prefix caching or a faster GPU). Decode: TPOT over the
   * step time at the batch each decode-capable worker carried (Little's law).
   */
  private correctionsFrom(obs: IntervalObservation): Corrections {
    const t = this.o.tuning;
    const clamp = (v: number, hi: number) => Math.min(hi, Math.max(t.correctionMin, v));
    const out: Corrections = { ...NO_CORRECTION };
    if (obs.ttftMs !== undefined && obs.ttftSamples >= t.minSamples) {
      const expected = this.o.profile.prefillMs(this.lastIsl) / tpSpeedup(this.sizing.tp, this.sizing.tpEfficiency);
      out.prefill = clamp(obs.ttftMs / expected, 1);
    }
    if (obs.tpotMs !== undefined && obs.tpotMeanMs !== undefined && obs.tpotSamples >= t.minSamples) {
      const decodeCapable = Math.max(1, this.desired.decode + this.desired.both);
      const batch = Math.max(1, (obs.ratePerS * this.lastOsl * obs.tpotMeanMs) / 1000 / decodeCapable);
      const context = this.lastIsl + this.lastOsl / 2;
      const expected = this.o.profile.stepMs(batch, batch * context) / tpSpeedup(this.sizing.tp, this.sizing.tpEfficiency);
      out.decode = clamp(obs.tpotMs / expected, t.correctionMax);
    }
    return out;
  }

  /** The pool's SLO behaviours between the current layout and the sized target. */
  private behave(
    target: Layout,
    floor: Layout,
    obs: IntervalObservation,
    util: PoolUtilization | undefined,
    now: number,
    need: Need,
  ): { next: Layout; reason: DecisionReason; details: string[] } {
    const settings = this.pool.planner;
    const t = this.o.tuning;
    const cur = this.desired;
    const next = { ...cur };
    const details: string[] = [];
    let reason: DecisionReason = "sizing";

    const sizedUp = WORKER_ROLES.filter((r) => target[r] > cur[r]);
    for (const r of sizedUp) next[r] = target[r];
    if (sizedUp.length > 0) details.push(this.describeNeed(need));

    const threshold = settings.scaleUpThreshold;
    const prefillHot = util !== undefined && util.prefillQueueUtil > threshold;
    const decodeHot = util !== undefined && util.kvUtil > threshold;
    // A step up needs minSamples completions to act on; holding a scale-down needs only the rate.
    const overAllowance = (obs.violationRate ?? 0) > settings.violationsAllowed;
    const violating = obs.completions >= t.minSamples && overAllowance;
    let prefillMissed = violating && obs.ttftViolations > 0 && obs.ttftViolations >= obs.tpotViolations;
    let decodeMissed = violating && obs.tpotViolations > 0 && obs.tpotViolations >= obs.ttftViolations;
    // Failures without latencies: a decode-capable worker helps either way.
    if (violating && !prefillMissed && !decodeMissed) decodeMissed = true;
    const stepPrefill = prefillHot || prefillMissed;
    const stepDecode = decodeHot || decodeMissed;
    if (stepPrefill || stepDecode) {
      const why: string[] = [];
      if (violating) why.push(`${pct(obs.violationRate!)} of ${obs.completions} requests missed the SLO (allowed ${pct(settings.violationsAllowed)})`);
      if (prefillHot) why.push(`prefill queue at ${pct(util!.prefillQueueUtil)} (threshold ${pct(threshold)})`);
      if (decodeHot) why.push(`KV cache at ${pct(util!.kvUtil)} (threshold ${pct(threshold)})`);
      const sinceUp = now - this.lastScaleUpMs;
      if (sinceUp < t.startupDelayMs) {
        details.push(`step-up held: workers added ${fmt(sinceUp / 1000)} s ago are still starting; ${why.join("; ")}`);
      } else {
        const allBoth = cur.prefill === 0 && cur.decode === 0;
        if (allBoth && settings.costOptimization) next.both = Math.max(next.both, cur.both + 1);
        else {
          if (stepPrefill) next.prefill = Math.max(next.prefill, cur.prefill + 1);
          if (stepDecode) next.decode = Math.max(next.decode, cur.decode + 1);
        }
        reason = violating ? "violations" : "utilization";
        details.unshift(`step up: ${why.join("; ")}`);
      }
    }

    // The most each role was sized for within the window: a scale-down goes no lower.
    const windowMs = scaleDownWindowMs(settings, t);
    this.recentTargets.push({ atMs: now, layout: { ...target } });
    while (this.recentTargets[0]!.atMs <= now - windowMs && this.recentTargets.length > 1) this.recentTargets.shift();
    const stable = this.recentTargets.reduce((m, e) => maxLayout(m, e.layout), target);

    const up = WORKER_ROLES.some((r) => next[r] > cur[r]);
    const excess = WORKER_ROLES.filter((r) => target[r] < cur[r]);
    if (!up && excess.length > 0) {
      const cooldownMs = scaleDownCooldownMs(settings, t);
      const sinceChange = now - this.lastChangeMs;
      const lower = excess.filter((r) => stable[r] < cur[r]);
      if (overAllowance) details.push(`scale-down held: ${pct(obs.violationRate!)} violations over the ${pct(settings.violationsAllowed)} allowance`);
      else if (prefillHot || decodeHot) details.push("scale-down held: utilization over the scale-up threshold");
      else if (sinceChange < cooldownMs) details.push(`scale-down held: cooldown, ${fmt((cooldownMs - sinceChange) / 1000)} s left`);
      else if (lower.length === 0) details.push(`scale-down held: sized for ${describeLayout(stable)} within the last ${fmt(windowMs / 1000)} s`);
      else {
        const removable = lower.filter((r) => floor[r] < cur[r]);
        if (removable.length === 0) {
          const o = this.load!.observed;
          details.push(
            `scale-down held: the ${fmt(o.ratePerS)} req/s at ISL ${fmt(o.isl, 0)}, OSL ${fmt(o.osl, 0)} just observed needs ${describeLayout(floor)}, more than the forecast's ${describeLayout(target)}`,
          );
        } else {
          // One step, from the role with the most workers beyond the target.
          const role = removable.reduce((a, b) => (cur[b] - stable[b] > cur[a] - stable[a] ? b : a));
          next[role]--;
          reason = "scale_down";
          details.push(`scale down one ${role} worker toward ${describeLayout(target)}`, this.describeNeed(need));
        }
      }
    }
    return { next: fitToCap(next, this.maxWorkers, need), reason, details };
  }

  /** Takes `next` through the budget and decides it if it differs from the current decision. */
  private conclude(next: Layout, reason: DecisionReason, details: string[], need: Need): void {
    this.wanted = next;
    const cap = Math.min(this.maxWorkers, this.o.budget.grant(this));
    const granted = fitToCap(next, cap, need);
    if (totalWorkers(granted) < totalWorkers(next)) {
      details.push(`budget: ${cap} worker${cap === 1 ? "" : "s"} granted of ${totalWorkers(next)} wanted (higher-priority pools first)`);
      if (totalWorkers(granted) < totalWorkers(this.desired)) reason = "budget";
    }
    if (!sameLayout(granted, this.desired)) this.decide(granted, reason, details);
  }

  /**
   * Hands a decision to the applier, then records it: a throw before the hand-over leaves the planner
   * as it was (the next interval decides again), and one after it finds the decision delivered.
   */
  private decide(to: Layout, reason: DecisionReason, details: string[]): void {
    const now = this.o.clock.nowMs();
    const from = this.desired;
    const decision: Decision = {
      pool: this.pool.name,
      atMs: now,
      from: { ...from },
      to: { ...to },
      tp: this.pool.tp,
      gpus: totalWorkers(to) * this.pool.tp,
      reason,
      details,
    };
    this.o.applier.submit(scaleRequestOf(decision, this.knownRunning()));
    this.changes++;
    if (WORKER_ROLES.some((r) => to[r] > from[r])) this.lastScaleUpMs = now;
    this.lastChangeMs = now;
    this.desired = { ...to };
    this.decisions.push(decision);
    if (this.decisions.length > this.o.tuning.decisionsKept) this.decisions.shift();
    this.o.metrics.decisions.inc({ pool: this.pool.name, reason });
    this.publishLayouts();
    this.o.logger.log("info", "planner decision", {
      pool: this.pool.name,
      from: describeLayout(from),
      to: describeLayout(to),
      gpus: decision.gpus,
      reason,
      details,
    });
  }

  /**
   * What the pool runs, when the planner knows it: the applied layout once every decision is
   * confirmed. A decision being applied or failed may have set some roles and not others, and the
   * next one replaces it in the applier: until then nothing is known, and the actuator sets every
   * role that differs from what it reads.
   */
  private knownRunning(): Layout | undefined {
    const status = this.o.applier.state().status;
    const settled = (status === "none" || status === "applied") && sameLayout(this.applied, this.desired);
    return settled ? { ...this.applied } : undefined;
  }

  /** A read's answer arrives in a promise callback, where an error would be an unhandled rejection. */
  private afterRead(handle: () => void): void {
    this.reading = false;
    try {
      handle();
    } catch (err) {
      this.failQuietly(`planner-read:${this.pool.name}`, "error", "planner could not take in what the pool runs", { pool: this.pool.name, error: messageOf(err) });
    }
  }

  private adopt(layout: Layout | undefined, changes: number): void {
    if (layout === undefined) {
      // The actuator cannot tell for this pool: the planner's own decisions stand.
      if (this.running.source === "unknown") this.running = { source: "assumed", readAtMs: null, readError: null };
      return;
    }
    if (!WORKER_ROLES.every((r) => Number.isSafeInteger(layout[r]) && layout[r] >= 0)) {
      return this.readFailed(`not a layout of worker counts: ${JSON.stringify(layout)}`);
    }
    const now = this.o.clock.nowMs();
    const first = this.running.source === "unknown";
    this.running = { source: "read", readAtMs: now, readError: null };
    this.once.clear(`planner-read:${this.pool.name}`, "planner reads what the pool runs again", { pool: this.pool.name });
    // Nothing is decided before the first read; later, a decision in flight makes the read stale.
    const status = this.o.applier.state().status;
    if (!first && (changes !== this.changes || status === "applying" || status === "failed")) return;
    const read = { prefill: layout.prefill, decode: layout.decode, both: layout.both };
    if (!first && sameLayout(read, this.desired)) return;
    this.o.logger.log("info", first ? "planner read what the pool runs" : "planner found the pool's workers changed outside it", {
      pool: this.pool.name,
      ...(first ? {} : { was: describeLayout(this.desired) }),
      runs: describeLayout(read),
    });
    this.account(now);
    // Workers found at start were running before; ones added since are starting.
    if (!first && WORKER_ROLES.some((r) => read[r] > this.desired[r])) this.lastScaleUpMs = now;
    if (!sameLayout(read, this.desired)) this.lastChangeMs = now;
    this.desired = { ...read };
    this.applied = { ...read };
    this.wanted = { ...read };
    this.publishLayouts();
  }

  private readFailed(error: string): void {
    this.running = { ...this.running, readError: error };
    this.once.fail(`planner-read:${this.pool.name}`, "read", "planner cannot read what the pool runs; retrying every interval", { pool: this.pool.name, error });
  }

  private removePredicted(): void {
    for (const quantity of ["requests_per_second", "isl_tokens", "osl_tokens"]) this.o.metrics.predicted.remove({ pool: this.pool.name, quantity });
  }

  private skip(cause: string, message: string): void {
    this.lastSkip = { atMs: this.o.clock.nowMs(), cause, message };
    this.o.metrics.skipped.inc({ pool: this.pool.name, cause });
    this.failQuietly(this.subject, cause, "planner skipped sizing for this interval; the pool keeps its workers", { pool: this.pool.name, message });
  }

  /**
   * Logs a failure once per cause where an error is being handled, which must not throw in turn (out
   * of a timer, or out of a promise callback as an unhandled rejection): when the logger is what
   * fails (a closed stderr), the line is lost and planning goes on.
   */
  private failQuietly(subject: string, cause: string, message: string, fields: Record<string, unknown>): void {
    try {
      this.once.fail(subject, cause, message, fields);
    } catch {
      // Nowhere left to report it.
    }
  }

  private describeNeed(n: Need): string {
    const c = n.capacity;
    const b = this.pool.planner.bufferRatio;
    return (
      `${fmt(n.load.ratePerS, 2)} req/s at ISL ${fmt(n.load.isl, 0)}, OSL ${fmt(n.load.osl, 0)}: ` +
      `prefill ${fmt(n.prefillTokensPerS)} tok/s / (${fmt(c.prefillTokensPerS)} x ${b}) = ${n.prefillShare.toFixed(2)} workers; ` +
      `decode ${fmt(n.outputTokensPerS)} tok/s / (${fmt(c.decodeTokensPerS)} at batch ${c.decodeBatch} x ${b}) = ${n.decodeShare.toFixed(2)} workers`
    );
  }

  /** Adds the applied layout's GPU time since the last call to the GPU-time and cost counters. */
  private account(now: number): void {
    const seconds = Math.max(0, now - this.lastAccountMs) / 1000;
    this.lastAccountMs = now;
    const gpus = totalWorkers(this.applied) * this.pool.tp;
    if (seconds > 0 && gpus > 0) {
      this.o.metrics.gpuSeconds.inc({ pool: this.pool.name }, gpus * seconds);
      this.o.metrics.cost.inc({ pool: this.pool.name }, ((gpus * seconds) / 3600) * this.o.gpuHourPrice);
    }
  }

  private publishLayouts(): void {
    const m = this.o.metrics;
    const pool = this.pool.name;
    for (const role of WORKER_ROLES) {
      m.desiredWorkers.set({ pool, role }, this.desired[role]);
      m.currentWorkers.set({ pool, role }, this.applied[role]);
    }
    m.desiredGpus.set({ pool, priority: String(this.pool.sloPriority) }, this.desiredGpus);
  }

  private publishObservation(obs: IntervalObservation): void {
    const m = this.o.metrics;
    const pool = this.pool.name;
    // "Over the last interval": an interval without samples has no value, not the previous one's.
    setOrRemove(m.observedLatency, { pool, quantity: "ttft" }, obs.ttftMs === undefined ? undefined : obs.ttftMs / 1000);
    setOrRemove(m.observedLatency, { pool, quantity: "tpot" }, obs.tpotMs === undefined ? undefined : obs.tpotMs / 1000);
    setOrRemove(m.violationRatio, { pool }, obs.violationRate);
    setOrRemove(m.attainment, { pool }, obs.violationRate === undefined ? undefined : 1 - obs.violationRate);
    // Utilisation the engine did not give this interval (no eligible pod on a side), or not a number,
    // removes the series: before, the last value stayed for good.
    setOrRemove(m.utilization, { pool, kind: "prefill_queue" }, finite(obs.utilization?.prefillQueueUtil));
    setOrRemove(m.utilization, { pool, kind: "kv" }, finite(obs.utilization?.kvUtil));
    const gpus = totalWorkers(this.applied) * this.pool.tp;
    m.tokensPerGpuSecond.set({ pool }, gpus > 0 ? obs.tokensPerS / gpus : 0);
  }

  private get subject(): string {
    return `planner:${this.pool.name}`;
  }
}

function isUnit(v: number): boolean {
  return Number.isFinite(v) && v >= 0 && v <= 1;
}

function maxLayout(a: Layout, b: Layout): Layout {
  return { prefill: Math.max(a.prefill, b.prefill), decode: Math.max(a.decode, b.decode), both: Math.max(a.both, b.both) };
}

/** A gauge series set to `value`, or removed when there is none: no series keeps a value it no longer has. */
function setOrRemove(gauge: Gauge<string>, labels: Record<string, string>, value: number | undefined): void {
  if (value === undefined) gauge.remove(labels);
  else gauge.set(labels, value);
}

function finite(v: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}
