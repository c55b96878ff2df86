// The engine: route -> snapshot -> score -> select -> account (SPEC.md §3, §6). Picks that arrive
// together are micro-batched per pool; a batch runs on the main thread's kernel below the measured
// crossover and on a Piscina worker above it; the main thread then applies the batch's in-flight load
// in pick order and maps pod indices to addresses with the snapshot version the result names.

import type { KubeConfig } from "@kubernetes/client-node";
import { Piscina } from "piscina";
import { Counter, Gauge, type Registry } from "prom-client";
import { realClock, type Clock } from "../clock.js";
import { schemaProblems } from "../config/load.js";
import type { HeadroomConfig, PoolConfig } from "../config/schema.js";
import { PodInputSchema } from "../config/schema.js";
import { ConfigError, HeadroomError, messageOf, shortened } from "../errors.js";
import { oracle } from "../kernel/oracle.js";
import { TwinKernel } from "../kernel/twin.js";
import type { OptimizerParams, PickRequest, PickResult, TopologyParams } from "../kernel/types.js";
import { ROLE_DECODE, ROLE_ELIGIBLE, ROLE_PREFILL } from "../kernel/types.js";
import { requestProblem } from "../kernel/validate.js";
import { readResults, WasmKernel } from "../kernel/wasm.js";
import type { Logger } from "../log.js";
import { registered, tallied, type CounterTally } from "../metrics.js";
import { builtSibling } from "../paths.js";
import type { Actuator } from "../planner/actuators.js";
import { KubernetesActuator } from "../planner/kubernetes-actuator.js";
import { Planners } from "../planner/planners.js";
import { WebhookActuator } from "../planner/webhook-actuator.js";
import { KubernetesDiscovery } from "../pods/kubernetes.js";
import type { PoolUtilization } from "../planner/types.js";
import { Cluster, type CompletionReport } from "./cluster.js";
import { predictedOf, type KernelHold, type PoolState } from "./pool-state.js";
import type { EngineApi, ExplainedPair, PickAnswer, PickAnswers, PickInput, PodPush, Readiness, RouteAnswer } from "./types.js";
import { encodeRequests, type WorkerData, type WorkerTask } from "./worker-protocol.js";

/** The pool a request without a level goes to (SPEC.md §6); the first configured pool when none has it. */
export const DEFAULT_LEVEL = "medium";
/** Pairs listed by `explain`. */
export const EXPLAIN_PAIRS = 10;
/**
 * Explaining runs the brute-force oracle on the main thread, an object per pair and a sort: about
 * 6 µs a pair here (1.5 s at 250,000 pairs, while no other pick is answered). Beyond this many pairs
 * (about 0.1 s) the answer goes without it.
 */
export const EXPLAIN_MAX_PAIRS = 16_384;
/**
 * Batches waiting for room in the worker threads' queues beyond this are picked on the main thread
 * instead: Piscina's own queue has no bound, and the main thread busy picking reads no more requests.
 */
export const MAX_WAITING_WORKER_BATCHES = 64;

export interface EngineOptions {
  config: HeadroomConfig;
  logger: Logger;
  registry: Registry;
  clock?: Clock;
  env?: Record<string, string | undefined>;
  kubeConfig?: KubeConfig;
}

interface Pending {
  pool: PoolState;
  input: PickInput;
  request: PickRequest;
  answers: Answers;
  /** Where this pick's answer goes in its call's answers. */
  index: number;
}

/**
 * The answers of one `pick` call, handed over once every pick of it is answered: one promise per call,
 * not one per pick (a stream frame of 64 picks would otherwise make 65).
 */
class Answers {
  readonly values: PickAnswers;
  private left: number;

  constructor(
    count: number,
    private readonly done: (values: PickAnswers) => void,
  ) {
    this.values = new Array(count);
    this.left = count;
    if (count === 0) done(this.values);
  }

  set(index: number, answer: PickAnswer | HeadroomError): void {
    this.values[index] = answer;
    if (--this.left === 0) this.done(this.values);
  }
}

/** The main thread's kernel for one pool and what it holds of the pool's snapshot. */
interface InlineKernel {
  kernel: WasmKernel | TwinKernel;
  held: KernelHold;
}

export class Engine implements EngineApi {
  readonly cluster: Cluster;
  readonly planners: Planners;
  private config: HeadroomConfig;
  private readonly byLevel = new Map<string, PoolConfig>();
  private defaultPool: PoolConfig;
  private readonly inline = new Map<string, InlineKernel>();
  private readonly workers: Piscina<WorkerTask, Float64Array | null> | null;
  private readonly queue: Pending[] = [];
  private flushScheduled = false;
  private paramsVersion = 1;
  // The counters of every pick and batch are tallies (src/metrics.ts): a labelled increment costs as
  // much as a small pick.
  private readonly selections: CounterTally<"outcome">;
  private readonly picks: CounterTally<"pool" | "outcome">;
  private readonly pairsEvaluated: CounterTally<never>;
  private readonly batches: CounterTally<"where">;
  private readonly workerFailures: Counter;
  private closed = false;
  /** Batches handed to the worker threads and not answered yet (headroom_worker_batches). */
  private workerBatchesInFlight = 0;

  private constructor(private readonly options: EngineOptions) {
    const { config, registry } = options;
    this.config = config;
    this.cluster = new Cluster({
      config,
      clock: options.clock ?? realClock,
      logger: options.logger,
      registry,
      env: options.env,
      kubeConfig: options.kubeConfig,
    });
    this.planners = new Planners({
      pools: config.pools,
      cluster: config.cluster,
      tpEfficiency: config.predictors.tpEfficiency,
      profile: this.cluster.profiles.get(config.predictors.defaultProfile)!,
      clock: options.clock ?? realClock,
      logger: options.logger,
      registry,
      utilization: (pool) => this.utilization(pool),
      actuator: makeActuator(config, options.kubeConfig),
      apply: config.planners.apply,
      tuning: (pool) => {
        const p = config.pools.find((c) => c.name === pool.name)!.planner;
        return Object.fromEntries(
          Object.entries({ cooldownMs: p.cooldownMs, startupDelayMs: p.startupDelayMs, burstFactor: p.burstFactor, scaleDownWindowMs: p.scaleDownWindowMs }).filter(
            ([, v]) => v !== undefined,
          ),
        );
      },
    });
    for (const pool of config.pools) this.byLevel.set(pool.sloLevel, pool);
    this.defaultPool = this.byLevel.get(DEFAULT_LEVEL) ?? config.pools[0];
    for (const pool of config.pools) this.inline.set(pool.name, { kernel: makeKernel(config, options.logger), held: { version: -1, loadSeq: -1 } });
    this.workers =
      config.workers.threads > 0
        ? new Piscina<WorkerTask, Float64Array | null>({
            filename: builtSibling(import.meta.url, "./worker.js").href,
            minThreads: config.workers.threads,
            maxThreads: config.workers.threads,
            idleTimeout: Infinity,
            // Tasks queue in the worker, not here: one at a time, it would idle through every round trip.
            concurrentTasksPerWorker: config.workers.queuePerThread,
            workerData: { nice: config.workers.nice } satisfies WorkerData,
          })
        : null;
    this.selections = tallied(registry, "llm_d_inference_scheduler_pd_slo_pair_selections_total", "Pair selections by outcome", ["outcome"]);
    this.pairsEvaluated = tallied(registry, "llm_d_inference_scheduler_pd_slo_pairs_evaluated_total", "Candidate pairs considered by picks", []);
    this.picks = tallied(registry, "headroom_picks_total", "Picks routed to each pool, by outcome", ["pool", "outcome"]);
    this.batches = tallied(registry, "headroom_pick_batches_total", "Kernel batches by where they ran: inline (main thread) or worker", ["where"]);
    const workers = this.workers;
    const onWorkers = () => this.workerBatchesInFlight;
    registered(registry, "headroom_worker_batches", Gauge, () =>
      new Gauge({
        name: "headroom_worker_batches",
        help: "Kernel batches handed to worker threads and not answered yet: queued (waiting for room in a thread's queue) or running (in a thread's queue)",
        labelNames: ["state"],
        registers: [registry],
        collect() {
          const queued = workers?.queueSize ?? 0;
          this.set({ state: "queued" }, queued);
          this.set({ state: "running" }, Math.max(0, onWorkers() - queued));
        },
      }),
    );
    const failures = "headroom_worker_failures_total";
    this.workerFailures = registered(registry, failures, Counter, () =>
      new Counter({ name: failures, help: "Batches lost to a worker that failed; each of their picks was answered WORKER_FAILED", registers: [registry] }),
    );
  }

  /** Builds the engine (profiles, predictors, kernels, workers). Throws ConfigError for what the schema cannot see. */
  static async create(options: EngineOptions): Promise<Engine> {
    return new Engine(options);
  }

  start(): void {
    this.cluster.start();
    this.planners.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.planners.close();
    this.cluster.close();
    for (const tally of [this.selections, this.pairsEvaluated, this.picks, this.batches]) tally.close();
    for (const p of this.queue.splice(0)) p.answers.set(p.index, new HeadroomError("NOT_READY", "the engine is shutting down"));
    await this.workers?.destroy();
  }

  /**
   * Applies a reloaded configuration: optimizer, topology, and each pool's targets, description and
   * static pods. Anything else needs a restart; such a configuration is refused (ConfigError) and
   * nothing changes.
   */
  reload(next: HeadroomConfig): void {
    const restart = restartSections(this.config, next);
    if (restart.length > 0) throw new ConfigError([`these changes need a restart: ${restart.join(", ")}`]);
    this.config = next;
    this.byLevel.clear();
    for (const pool of next.pools) this.byLevel.set(pool.sloLevel, pool);
    this.defaultPool = this.byLevel.get(DEFAULT_LEVEL) ?? next.pools[0];
    this.planners.reload(next.pools);
    for (const inline of this.inline.values()) {
      inline.kernel.setParams(next.optimizer, next.topology);
      inline.held.loadSeq = -1;
    }
    this.paramsVersion++;
    this.cluster.reloadPods(next.pools);
  }

  route(sloLevel: string | undefined): RouteAnswer {
    const pool = this.poolFor(sloLevel);
    return { pool: pool.name, targets: { ...pool.targets }, sloPriority: pool.sloPriority };
  }

  pick(inputs: readonly PickInput[]): Promise<PickAnswers> {
    return new Promise((resolve) => this.pickQueued(inputs, resolve));
  }

  pickQueued(inputs: readonly PickInput[], done: (answers: PickAnswers) => void): void {
    this.submit(inputs, done, false);
  }

  pickBatch(inputs: readonly PickInput[], done: (answers: PickAnswers) => void, options: { fallbacks?: boolean } = {}): void {
    this.submit(inputs, done, true, options.fallbacks ?? true);
  }

  report(reports: readonly CompletionReport[]): { known: number; unknown: number } {
    reports.forEach((r, i) => {
      const problem = reportProblem(r);
      if (problem) throw new HeadroomError("REQUEST_INVALID", `reports[${i}]: ${problem}`);
    });
    let known = 0;
    for (const r of reports) {
      let pool = this.cluster.report(r);
      if (pool !== undefined) known++;
      // A request slower than inflightTtlFactor times its prediction outlives its in-flight entry; its
      // report still counts for its pool's planner, found by the pod that served it: the slowest
      // requests are the ones the planner must not miss.
      else if (r.decode !== undefined) pool = this.cluster.pods.get(r.decode)?.spec.pool;
      if (pool !== undefined) this.planners.observeCompletion(pool, r);
    }
    return { known, unknown: reports.length - known };
  }

  withdraw(answers: PickAnswers): number {
    let withdrawn = 0;
    for (const a of answers) if (!(a instanceof HeadroomError) && this.cluster.inflight.withdraw(a.requestId)) withdrawn++;
    return withdrawn;
  }

  upsertPods(pods: readonly PodPush[]): void {
    const specs = pods.map((pod, i) => {
      if (pod === null || typeof pod !== "object") throw new HeadroomError("REQUEST_INVALID", `pods[${i}]: must be an object`);
      if (!this.cluster.pools.has(pod.pool)) {
        throw new HeadroomError("UNKNOWN_POOL", `pods[${i}].pool: unknown pool ${shortened(JSON.stringify(pod.pool) ?? String(pod.pool))} (known: ${[...this.cluster.pools.keys()].join(", ")})`);
      }
      const { pool, ...rest } = pod;
      const parsed = PodInputSchema.safeParse(rest, { reportInput: true });
      if (!parsed.success) throw new HeadroomError("REQUEST_INVALID", schemaProblems(parsed.error, rest, `pods[${i}]`)[0]);
      if (parsed.data.profile !== undefined && !this.cluster.profiles.has(parsed.data.profile)) {
        throw new HeadroomError("REQUEST_INVALID", `pods[${i}].profile: unknown profile ${parsed.data.profile} (known: ${[...this.cluster.profiles.keys()].join(", ")})`);
      }
      return { ...parsed.data, draining: rest.draining, pool };
    });
    for (const spec of specs) this.cluster.upsertPod("push", spec);
  }

  deletePod(address: string): boolean {
    return this.cluster.pods.remove("push", address);
  }

  ready(replicaOnly = false): Readiness {
    const reasons: string[] = [];
    if (this.closed) reasons.push("shutting down");
    if (this.workers !== null && this.workers.threads.length === 0) reasons.push("no kernel worker is running");
    for (const [name, pool] of this.cluster.pools) {
      const snap = pool.snapshot;
      if (snap === null) {
        reasons.push(`pool ${name}: no snapshot yet`);
        continue;
      }
      if (replicaOnly) continue;
      // A decode pod with no prefill pod to pair with prefills locally: it alone makes a pair.
      const decode = snap.roles.some((role) => (role & ROLE_ELIGIBLE) !== 0 && (role & ROLE_DECODE) !== 0);
      if (!decode) reasons.push(`pool ${name}: no candidate pair (${snap.pods} pods, none eligible for decode)`);
    }
    return { ready: reasons.length === 0, reasons };
  }

  state(): unknown {
    return {
      pools: [...this.cluster.pools.values()].map((pool) => {
        const published = pool.latestPods;
        const config = this.config.pools.find((p) => p.name === pool.name)!;
        return {
          name: pool.name,
          sloLevel: config.sloLevel,
          sloPriority: config.sloPriority,
          targets: config.targets,
          snapshotVersion: pool.snapshot?.version ?? null,
          refreshMs: round(pool.lastRefreshMs),
          means: { isl: round(pool.means.isl), osl: round(pool.means.osl) },
          pods: (published?.addresses ?? []).map((address, i) => {
            const pod = this.cluster.pods.get(address);
            const status = published!.statuses[i];
            return {
              address,
              role: pod?.spec.role,
              sources: pod?.sources,
              freshness: status.freshness,
              eligible: status.eligible,
              excludedBecause: status.excludedBecause,
              failOpen: status.failOpen,
              draining: pod?.spec.draining ?? false,
              metrics: pod?.metrics && { waiting: pod.metrics.waiting, running: pod.metrics.running, kvUsage: pod.metrics.kvUsage, scrapedAtMs: round(pod.metrics.scrapedAtMs) },
              inflight: this.cluster.inflight.podLoad(address),
            };
          }),
        };
      }),
      inflight: { entries: this.cluster.inflight.size, pods: this.cluster.inflight.podCount, ...this.cluster.inflight.counters },
      predictors: { prefillTtft: this.config.predictors.prefillTtft, decodeTtft: this.config.predictors.decodeTtft, decodeTpot: this.config.predictors.decodeTpot },
      workers: { threads: this.workers?.threads.length ?? 0, inlineBelowPairs: this.config.workers.inlineBelowPairs },
    };
  }

  planner(): unknown {
    return this.planners.state();
  }

  /**
   * What a pool's planner reads each interval: queued prefill work relative to the pool's TTFT target
   * per prefill-capable pod, and KV in use (scraped plus our in-flight picks) over the decode pods' capacity.
   */
  private utilization(poolName: string): PoolUtilization | undefined {
    const pool = this.cluster.pools.get(poolName);
    const snap = pool?.snapshot;
    const pods = pool?.latestPods;
    const config = this.config.pools.find((p) => p.name === poolName);
    if (!pool || !snap || !pods || !config || pods.version !== snap.version) return undefined;
    let queueMs = 0;
    let prefillPods = 0;
    let kvUsed = 0;
    let kvCapacity = 0;
    pods.features.forEach((f, i) => {
      if (!pods.statuses[i].eligible) return;
      if (f.role !== "decode") {
        prefillPods++;
        queueMs += snap.prefillQueueMs[i];
      }
      if (f.role !== "prefill") {
        kvUsed += f.kvTokensUsed + f.decodeTokensInFlight;
        kvCapacity += f.kvCapacityTokens;
      }
    });
    if (prefillPods === 0 || kvCapacity === 0) return undefined;
    return {
      prefillQueueUtil: Math.min(1, queueMs / (prefillPods * config.targets.ttftMs)),
      kvUtil: Math.min(1, kvUsed / kvCapacity),
    };
  }

  private poolFor(sloLevel: string | undefined): PoolConfig {
    if (sloLevel === undefined || sloLevel === "") return this.defaultPool;
    const pool = this.byLevel.get(sloLevel.toLowerCase());
    if (pool === undefined) {
      // Shown in part: a stream frame of long unknown levels must not come back as a larger answer.
      throw new HeadroomError("UNKNOWN_LEVEL", `unknown SLO level ${JSON.stringify(shortened(sloLevel))} (known: ${[...this.byLevel.keys()].join(", ")})`, {
        known: [...this.byLevel.keys()],
      });
    }
    return pool;
  }

  /**
   * Routes each pick and runs them: as their own batch at once (`now`), unless a batch window asks to
   * wait or picks queued ahead must keep their place; otherwise with what else arrives this loop turn.
   */
  private submit(inputs: readonly PickInput[], done: (answers: PickAnswers) => void, now: boolean, fallbacks = true): void {
    const answers = new Answers(inputs.length, done);
    const runNow = now && this.queue.length === 0 && this.config.workers.batchWindowUs === 0;
    const byPool = runNow ? new Map<PoolState, Pending[]>() : undefined;
    for (let index = 0; index < inputs.length; index++) {
      const pending = this.prepare(inputs[index], answers, index, fallbacks);
      if (pending === undefined) continue;
      if (byPool !== undefined) appendTo(byPool, pending.pool, pending);
      else {
        this.queue.push(pending);
        this.scheduleFlush();
      }
    }
    if (byPool !== undefined) this.runBatches(byPool);
  }

  /** A pick ready for its pool's next batch, or undefined when it is already answered (it cannot be made). */
  private prepare(input: PickInput, answers: Answers, index: number, fallbacks: boolean): Pending | undefined {
    if (this.closed) {
      answers.set(index, new HeadroomError("NOT_READY", "the engine is shutting down"));
      return undefined;
    }
    let poolConfig: PoolConfig;
    try {
      poolConfig = this.poolFor(input.sloLevel);
    } catch (err) {
      answers.set(index, err as HeadroomError);
      return undefined;
    }
    const pool = this.cluster.pools.get(poolConfig.name)!;
    this.planners.observeArrival(pool.name);
    const means = pool.means;
    const request: PickRequest = {
      inputTokens: input.inputTokens ?? Math.round(means.isl),
      outputTokens: input.outputTokens ?? Math.round(means.osl),
      prefixHit: input.prefixHit ?? 0,
      sloTtftMs: input.sloTtftMs ?? poolConfig.targets.ttftMs,
      sloTpotMs: input.sloTpotMs ?? poolConfig.targets.tpotMs,
      priority: input.priority ?? 0,
      seed: input.seed ?? (Math.random() * 4294967296) >>> 0,
      fallbacks,
    };
    const problem = requestProblem(request);
    if (problem) {
      answers.set(index, new HeadroomError("REQUEST_INVALID", problem));
      return undefined;
    }
    return { pool, input, request, answers, index };
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const run = () => {
      this.flushScheduled = false;
      this.flush();
    };
    const windowUs = this.config.workers.batchWindowUs;
    if (windowUs > 0) setTimeout(run, windowUs / 1000);
    else setImmediate(run);
  }

  /** Runs every queued pick. */
  private flush(): void {
    const byPool = new Map<PoolState, Pending[]>();
    for (const pending of this.queue.splice(0)) appendTo(byPool, pending.pool, pending);
    this.runBatches(byPool);
  }

  /** Per pool, in arrival order, in batches of at most batchCapacity. */
  private runBatches(byPool: Map<PoolState, Pending[]>): void {
    const capacity = this.config.workers.batchCapacity;
    for (const [pool, list] of byPool) {
      for (let at = 0; at < list.length; at += capacity) this.runBatch(pool, list.slice(at, at + capacity));
    }
  }

  /** Answers a batch: on the main thread before this returns, or on a worker when it is large enough. */
  private runBatch(pool: PoolState, batch: Pending[]): void {
    const snap = pool.snapshot;
    if (snap === null) {
      for (const p of batch) p.answers.set(p.index, new HeadroomError("NOT_READY", `pool ${pool.name} has no snapshot yet`));
      return;
    }
    const requests = batch.map((p) => p.request);
    const workers = this.workers;
    if (
      workers !== null &&
      candidatePairs(snap.roles) * batch.length >= this.config.workers.inlineBelowPairs &&
      workers.queueSize < MAX_WAITING_WORKER_BATCHES
    ) {
      this.batches.slot("worker").n++;
      this.workerBatchesInFlight++;
      workers
        .run({
          pool: pool.name,
          buffer: pool.shared.shared,
          params: this.config.optimizer,
          topology: this.config.topology,
          paramsVersion: this.paramsVersion,
          batchCapacity: this.config.workers.batchCapacity,
          requests: encodeRequests(requests),
        })
        .then(
          // null: the pool outgrew the buffer the task carried; the batch is picked again here.
          (rows) => {
            this.workerBatchesInFlight--;
            if (rows === null) this.settle(pool, batch, this.pickHere(pool, batch, requests));
            else this.settleWorker(pool, batch, readResults(rows));
          },
          (err: unknown) => {
            this.workerBatchesInFlight--;
            this.fail(pool, batch, err, "worker");
          },
        );
      return;
    }
    this.settle(pool, batch, this.pickHere(pool, batch, requests));
  }

  /** The batch picked by the main thread's kernel, or null when that failed (the batch is answered). */
  private pickHere(pool: PoolState, batch: Pending[], requests: PickRequest[]): PickResult[] | null {
    this.batches.slot("inline").n++;
    try {
      const inline = this.inline.get(pool.name)!;
      pool.syncKernel(inline.kernel, inline.held);
      return inline.kernel.pick(requests);
    } catch (err) {
      this.fail(pool, batch, err, "inline");
      return null;
    }
  }

  /**
   * A worker's results, settled once the picks whose pods left the pool or its candidates while the
   * batch was out (deleted, drained, gone stale) are made again here, from the current snapshot.
   */
  private settleWorker(pool: PoolState, batch: Pending[], results: PickResult[]): void {
    const gone: number[] = [];
    for (let k = 0; k < results.length; k++) if (!pool.stillCandidates(results[k])) gone.push(k);
    if (gone.length > 0) {
      const again = this.pickHere(
        pool,
        gone.map((k) => batch[k]),
        gone.map((k) => batch[k].request),
      );
      if (again === null) {
        // pickHere answered the picks made again; the others keep the worker's results.
        const picked = new Set(gone);
        this.settle(
          pool,
          batch.filter((_, k) => !picked.has(k)),
          results.filter((_, k) => !picked.has(k)),
        );
        return;
      }
      gone.forEach((k, j) => (results[k] = again[j]));
    }
    this.settle(pool, batch, results);
  }

  /** Counts a batch's results and answers its picks, in order. */
  private settle(pool: PoolState, batch: Pending[], results: PickResult[] | null): void {
    if (results === null) return;
    this.count(pool, results);
    batch.forEach((p, k) => {
      let answer: PickAnswer | HeadroomError;
      try {
        answer = this.answer(pool, p, results[k]);
      } catch (err) {
        // A bug must not take the process down from a timer or a worker's callback: this pick fails.
        this.options.logger.log("error", "answering a pick failed", { pool: pool.name, error: err instanceof Error ? err.stack : String(err) });
        answer = new HeadroomError("WORKER_FAILED", `answering the pick failed: ${messageOf(err)}`);
      }
      p.answers.set(p.index, answer);
    });
  }

  /**
   * Answers every pick of a batch whose kernel call failed: WORKER_FAILED for a worker thread that
   * failed (Piscina replaces it); on the main thread the kernel's own error (KERNEL_UNAVAILABLE, a
   * snapshot or size check), or WORKER_FAILED for anything else, which is a bug.
   */
  private fail(pool: PoolState, batch: Pending[], err: unknown, where: "inline" | "worker"): void {
    const error =
      where === "inline" && err instanceof HeadroomError
        ? err
        : new HeadroomError("WORKER_FAILED", `${where === "worker" ? "the kernel worker failed" : "the kernel failed on the main thread"}: ${messageOf(err)}`);
    if (where === "worker") this.workerFailures.inc();
    this.options.logger.log("error", `a kernel batch failed; its picks are answered ${error.code}`, { pool: pool.name, where, error: err instanceof Error ? err.stack : String(err) });
    for (const p of batch) p.answers.set(p.index, error);
  }

  private count(pool: PoolState, results: readonly PickResult[]): void {
    const pairs = this.pairsEvaluated.slot();
    for (const r of results) {
      this.selections.slot(r.outcome).n++;
      this.picks.slot(pool.name, r.outcome).n++;
      pairs.n += r.pairs;
    }
  }

  /** A result becomes an answer or an error; a pick's load joins its pods in pick order. */
  private answer(pool: PoolState, pending: Pending, r: PickResult): PickAnswer | HeadroomError {
    if (r.outcome === "shed") {
      return new HeadroomError("SHED", `sheddable request (priority ${pending.request.priority}) with no pair predicted to meet its SLO`);
    }
    if (r.outcome === "no_candidates") return new HeadroomError("NO_CANDIDATES", `pool ${pool.name} has no candidate pair`);
    if (r.outcome === "invalid_request") return new HeadroomError("REQUEST_INVALID", "the kernel refused the request");
    const pods = pool.podsAt(r.version);
    if (pods === undefined) return new HeadroomError("WORKER_FAILED", `snapshot version ${r.version} of pool ${pool.name} is no longer known`);
    // Explained on the numbers the pick saw, before its own load joins its pods.
    // The oracle reads the current snapshot, so its indices are the current version's.
    const explain = pending.input.explain ? this.explain(pool, pending.request, pool.latestPods!.addresses) : undefined;
    const predicted = predictedOf(r);
    // Picks that bring no request id get one from the in-flight table (src/pods/inflight.ts).
    const requestId = pool.recordPick(pending.input.requestId, pending.request, r, predicted, pods);
    if (requestId === null) return new HeadroomError("WORKER_FAILED", `the pick of pool ${pool.name} names no pod of snapshot version ${r.version}`);
    const decode = pods.addresses[r.decode];
    const prefill = r.prefill >= 0 ? pods.addresses[r.prefill] : undefined;
    const headers: Record<string, string> = { "x-gateway-destination-endpoint": decode };
    if (prefill !== undefined) headers["x-prefiller-host-port"] = prefill;
    const answer: PickAnswer = {
      requestId,
      pool: pool.name,
      outcome: r.outcome,
      decodeOnly: r.decodeOnly,
      prefill,
      decode,
      fallbacks: r.fallbacks.map((i) => pods.addresses[i]),
      predicted,
      headroom: {
        ttftMs: Number.isNaN(r.headroomTtftMs) ? undefined : r.headroomTtftMs,
        tpotMs: Number.isNaN(r.headroomTpotMs) ? undefined : r.headroomTpotMs,
        blended: Number.isNaN(r.blended) ? undefined : r.blended,
      },
      headers,
      pairs: r.pairs,
      positivePairs: r.positivePairs,
    };
    if (explain !== undefined) answer.explain = explain;
    return answer;
  }

  /** The best pairs by blended headroom (by end-to-end latency without an SLO), from the brute-force oracle. */
  private explain(pool: PoolState, request: PickRequest, addresses: readonly string[]): ExplainedPair[] | undefined {
    const snap = pool.snapshot!;
    if (candidatePairs(snap.roles) > EXPLAIN_MAX_PAIRS) return undefined;
    const { pairs } = oracle(snap, this.config.optimizer, this.config.topology, request);
    const hasSlo = request.sloTtftMs !== undefined || request.sloTpotMs !== undefined;
    const budget = (slo: number | undefined) => (slo === undefined ? undefined : slo * this.config.optimizer.sloBufferFactor);
    const ttftBudget = budget(request.sloTtftMs);
    const tpotBudget = budget(request.sloTpotMs);
    // Ties in snapshot order, as the kernel breaks them.
    return pairs
      .sort((a, b) => (hasSlo ? b.blended - a.blended : a.e2eMs - b.e2eMs) || a.p - b.p || a.d - b.d)
      .slice(0, EXPLAIN_PAIRS)
      .map((p) => ({
        prefill: p.local ? undefined : addresses[p.p],
        decode: addresses[p.d],
        link: p.linkClass,
        ttftMs: p.ttftMs,
        tpotMs: p.tpotMs,
        headroomTtftMs: ttftBudget === undefined ? undefined : ttftBudget - p.ttftMs,
        headroomTpotMs: tpotBudget === undefined ? undefined : tpotBudget - p.tpotMs,
        blended: Number.isNaN(p.blended) ? undefined : p.blended,
        positive: p.positive,
      }));
  }
}

/** The configured actuator; undefined leaves the planners' default, advisory. */
function makeActuator(config: HeadroomConfig, kubeConfig: KubeConfig | undefined): Actuator | undefined {
  const p = config.planners;
  if (p.actuator === "webhook" && p.webhook !== undefined) return new WebhookActuator(p.webhook);
  if (p.actuator === "kubernetes" && p.kubernetes !== undefined) {
    return new KubernetesActuator(kubeConfig ?? KubernetesDiscovery.defaultKubeConfig(), p.kubernetes);
  }
  return undefined;
}

function makeKernel(config: HeadroomConfig, logger: Logger): WasmKernel | TwinKernel {
  const params: OptimizerParams = config.optimizer;
  const topology: TopologyParams = config.topology;
  try {
    return new WasmKernel(params, topology, { batchCapacity: config.workers.batchCapacity });
  } catch (err) {
    // The twin is the documented fallback when WebAssembly is unavailable: it picks the same pairs, slower.
    logger.log("warn", "the WebAssembly kernel is unavailable; the main thread picks with the TypeScript twin", { error: messageOf(err) });
    return new TwinKernel(params, topology);
  }
}

/** Eligible prefill candidates x eligible decode candidates: the size of a pick's search. */
function candidatePairs(roles: Uint8Array): number {
  let prefill = 0;
  let decode = 0;
  for (const role of roles) {
    if ((role & ROLE_ELIGIBLE) === 0) continue;
    if (role & ROLE_PREFILL) prefill++;
    if (role & ROLE_DECODE) decode++;
  }
  return Math.max(prefill, 1) * Math.max(decode, 1);
}

function appendTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function reportProblem(r: CompletionReport): string | null {
  if (r === null || typeof r !== "object") return "must be an object";
  if (typeof r.requestId !== "string" || r.requestId === "") return "requestId must be a non-empty string";
  if (typeof r.ok !== "boolean") return "ok must be true or false";
  for (const key of ["ttftMs", "tpotMs", "inputTokens", "outputTokens"] as const) {
    const v = r[key];
    if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 0)) return `${key} must be a number >= 0, got ${JSON.stringify(v)}`;
  }
  if (r.decode !== undefined && typeof r.decode !== "string") return "decode must be a host:port string";
  return null;
}

/** Sections (or pool fields) that differ between two configurations and cannot change while running. */
function restartSections(a: HeadroomConfig, b: HeadroomConfig): string[] {
  const out: string[] = [];
  for (const key of Object.keys(a) as (keyof HeadroomConfig)[]) {
    if (key === "optimizer" || key === "topology" || key === "pools") continue;
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) out.push(key);
  }
  const fixed = (pools: HeadroomConfig["pools"]) =>
    JSON.stringify(pools.map(({ pods: _pods, targets: _targets, description: _description, ...rest }) => rest));
  if (fixed(a.pools) !== fixed(b.pools)) out.push("pools (other than targets, description and pods)");
  return out;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
