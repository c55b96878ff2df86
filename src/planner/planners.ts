// The planners of all pools (SPEC.md §6): one PoolPlanner per pool, each every adjustmentIntervalMs on
// the clock, sharing the cluster's GPU budget (lower-priority pools yield first), one ARIMA search
// thread and the metrics; observations come in through observeCompletion / observeArrival, and
// state() is the body of `GET /v1/planner`.

import type { Registry } from "prom-client";
import { every, type Cancel, type Clock } from "../clock.js";
import type { Logger } from "../log.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import { AdvisoryActuator, DecisionApplier, type Actuator } from "./actuators.js";
import { ArimaSearchThread, type ArimaSearcher } from "./arima-search.js";
import { ArimaPredictor, loadPredictor, type ArimaPredictorOptions, type LoadForecaster } from "./load-predictors.js";
import { PlannerMetrics } from "./metrics.js";
import { PoolPlanner, tuningFor, type PlannedPool, type PlannerTuning, type PoolPlannerState } from "./planner.js";
import { allocateBudget, checkMinimums } from "./sizing.js";
import { startupBlock } from "./startup-log.js";
import { totalWorkers, type CompletionObservation, type PoolUtilizationSource } from "./types.js";

export interface PlannersOptions {
  pools: readonly PlannedPool[];
  cluster: Readonly<{ gpuBudget: number; gpuHourPrice: number }>;
  /** predictors.tpEfficiency. */
  tpEfficiency: number;
  /** The profile pools are sized with (predictors.defaultProfile). */
  profile: LatencyProfile;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** Read once per interval per pool; without it the utilization threshold never triggers. */
  utilization?: PoolUtilizationSource;
  /** One actuator for every pool, or one per pool; advisory by default. */
  actuator?: Actuator | ((pool: PlannedPool) => Actuator);
  /** Planner options the configuration does not carry: the same for every pool, or per pool. */
  tuning?: Partial<PlannerTuning> | ((pool: PlannedPool) => Partial<PlannerTuning>);
  /** Retries of a decision that fails to apply. */
  apply?: { attempts?: number; initialBackoffMs?: number; maxBackoffMs?: number };
  /** ARIMA predictor options; `searcher` replaces the search thread the planners would start. */
  arima?: Omit<ArimaPredictorOptions, "searcher"> & { searcher?: ArimaSearcher };
}

export interface PlannersState {
  budgetGpus: number;
  desiredGpus: number;
  gpuHourPrice: number;
  pools: PoolPlannerState[];
}

export class Planners {
  private readonly planners: PoolPlanner[] = [];
  private readonly byName = new Map<string, PoolPlanner>();
  private readonly appliers: DecisionApplier[] = [];
  private readonly actuators = new Set<Actuator>();
  private readonly arimaPredictors: ArimaPredictor[] = [];
  private readonly timers: Cancel[] = [];
  private ownThread: ArimaSearchThread | null = null;
  private started = false;
  private closed = false;

  /** Throws a ConfigError when the pools' minimums (one worker each) exceed the GPU budget. */
  constructor(private readonly o: PlannersOptions) {
    checkMinimums(o.pools, o.cluster.gpuBudget);
    const metrics = new PlannerMetrics(o.registry);
    metrics.budgetGpus.set(o.cluster.gpuBudget);
    const searcher = () => o.arima?.searcher ?? this.thread().search;
    const budget = { grant: (p: PoolPlanner) => this.grant(p) };
    for (const pool of o.pools) {
      const forecaster: LoadForecaster = {
        rate: loadPredictor(pool.planner.loadPredictor, searcher, o.arima),
        isl: loadPredictor(pool.planner.loadPredictor, searcher, o.arima),
        osl: loadPredictor(pool.planner.loadPredictor, searcher, o.arima),
      };
      for (const p of Object.values(forecaster)) if (p instanceof ArimaPredictor) this.arimaPredictors.push(p);
      const actuator = typeof o.actuator === "function" ? o.actuator(pool) : (o.actuator ?? new AdvisoryActuator(o.logger));
      this.actuators.add(actuator);
      let planner: PoolPlanner | undefined;
      const applier = new DecisionApplier({
        ...o.apply,
        pool: pool.name,
        actuator,
        clock: o.clock,
        logger: o.logger,
        onApplied: (request) => planner?.confirm(request),
        onFailure: () => metrics.actuatorFailures.inc({ pool: pool.name, actuator: actuator.kind }),
      });
      this.appliers.push(applier);
      planner = new PoolPlanner({
        pool,
        profile: o.profile,
        tpEfficiency: o.tpEfficiency,
        gpuHourPrice: o.cluster.gpuHourPrice,
        tuning: tuningFor(pool, typeof o.tuning === "function" ? o.tuning(pool) : o.tuning),
        clock: o.clock,
        logger: o.logger,
        metrics,
        predictors: forecaster,
        budget,
        applier,
        utilization: o.utilization,
      });
      this.planners.push(planner);
      this.byName.set(pool.name, planner);
    }
  }

  /** Logs each planner's start-up block and starts the intervals (and burst checks) on the clock. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    for (const p of this.planners) {
      const state = p.state();
      const block = startupBlock(p.pool, this.o.profile, this.o.tpEfficiency, state.tuning, state.actuator);
      this.o.logger.log("info", block.lines.join("\n"), { ...block.fields, block: block.lines });
      p.refresh();
      this.timers.push(every(this.o.clock, p.pool.planner.adjustmentIntervalMs, () => p.tick()));
      if (p.pool.planner.burstProtection) this.timers.push(every(this.o.clock, state.tuning.burstCheckMs, () => p.burstCheck()));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const cancel of this.timers) cancel();
    for (const a of this.appliers) a.close();
    for (const a of this.actuators) a.close?.();
    this.ownThread?.close();
  }

  /** A reloaded configuration's pools: each planner takes its pool's new targets and description. */
  reload(pools: readonly PlannedPool[]): void {
    for (const pool of pools) this.byName.get(pool.name)?.retarget(pool);
  }

  /** A completion report of a request served in `pool`; other pools' names are ignored. */
  observeCompletion(pool: string, completion: CompletionObservation): void {
    this.byName.get(pool)?.observer.observeCompletion(completion);
  }

  /** A request routed to `pool` (for rates and burst detection); O(1), called on the pick path. */
  observeArrival(pool: string): void {
    this.byName.get(pool)?.observer.observeArrival();
  }

  state(): PlannersState {
    return {
      budgetGpus: this.o.cluster.gpuBudget,
      desiredGpus: this.planners.reduce((sum, p) => sum + p.desiredGpus, 0),
      gpuHourPrice: this.o.cluster.gpuHourPrice,
      pools: this.planners.map((p) => p.state()),
    };
  }

  /** Resolves when no ARIMA search runs and no decision is being applied (tests and benches). */
  async settled(): Promise<void> {
    await Promise.all(this.arimaPredictors.map((p) => p.settled()));
    await Promise.all(this.appliers.map((a) => a.settled()));
  }

  /**
   * The most workers `asking` may run: the budget shared by priority over every pool's wanted layout.
   * Pools whose current decision no longer fits their share are told to yield at once.
   */
  private grant(asking: PoolPlanner): number {
    const claims = this.planners.map((p) => ({
      pool: p.name,
      sloPriority: p.pool.sloPriority,
      tp: p.pool.tp,
      wantedWorkers: p.wantedWorkers,
    }));
    const granted = allocateBudget(claims, this.o.cluster.gpuBudget);
    for (const p of this.planners) {
      if (p === asking) continue;
      const cap = granted.get(p.name)!;
      if (totalWorkers(p.desiredLayout) > cap) {
        p.yieldTo(cap, `budget: yields to pool ${asking.name} (priority ${asking.pool.sloPriority}); ${cap} worker${cap === 1 ? "" : "s"} granted`);
      }
    }
    return granted.get(asking.name)!;
  }

  private thread(): ArimaSearchThread {
    this.ownThread ??= new ArimaSearchThread({ logger: this.o.logger });
    return this.ownThread;
  }
}
