// The `remote` predictor as the main thread sees it: the HTTP work runs in its own thread
// (remote-thread.ts); here `refresh` posts the pods' features, `fill` overlays the curves that came
// back on the profile's, and the thread's counters are mirrored into the app's registry. The main
// thread's clock stamps the values, so it is the main thread that judges whether an answer came in
// time; and it starts a new thread when the thread dies.

import { Worker } from "node:worker_threads";
import { Counter } from "prom-client";
import type { Cancel } from "../clock.js";
import { ConfigError } from "../errors.js";
import { OncePerCause } from "../log.js";
import { registered } from "../metrics.js";
import { builtSibling } from "../paths.js";
import {
  counterOn,
  maxAgeOf,
  overlayRemote,
  REMOTE_COUNTERS,
  remoteTimingProblem,
  type FallbackReason,
  type RemotePredictorInit,
  type RemoteValues,
  type TrainingDropReason,
} from "./remote.js";
import type { FromRemoteThread, ToRemoteThread } from "./remote-thread.js";
import { QUANTITIES, type PodFeatures, type PoolPredictions, type Predictor, type Quantity } from "./types.js";

/**
 * A thread that dies is started again after these delays; one that dies this many times in a row
 * without answering a refresh in between stays down (the pods keep the profile).
 */
export const THREAD_RESTART_DELAYS_MS: readonly number[] = Object.freeze([1000, 2000, 4000, 8000, 16_000]);

export const THREAD_EXITS_METRIC = "headroom_predictor_thread_exits_total";

interface MetricJson {
  name: string;
  help: string;
  type: string;
  values: { labels: Record<string, string | number>; value: number }[];
}

type Labels = Record<string, string | number>;

/** A counter as the app's registry shows it: the live thread's values plus what is kept here. */
interface Mirror {
  /** The live thread's values as of its last answer. */
  thread: MetricJson["values"];
  /** What dead threads had counted, and what the main thread counts itself, by label set. */
  kept: Map<string, { labels: Labels; value: number }>;
}

export class ThreadedRemotePredictor implements Predictor {
  readonly kind = "remote" as const;
  /** Null while the thread is down (between its exit and its restart, or for good). */
  private worker: Worker | null;
  private readonly latest = new Map<Quantity, Map<string, RemoteValues>>();
  private readonly waiting = new Map<number, { startedMs: number; grid: Float64Array; inFlight: Map<string, { prefill: number; local: number }>; done: () => void }>();
  private readonly mirrors = new Map<string, Mirror>();
  private readonly served: Quantity[];
  private readonly once: OncePerCause;
  private readonly exits: Counter;
  readonly maxAgeMs: number;
  private nextId = 1;
  /** Exits since the thread last answered a refresh. */
  private exitsInARow = 0;
  private cancelRestart: Cancel | null = null;
  /** What the thread threw before it exited, for the exit's log line. */
  private lastError: string | undefined;
  private closed = false;

  /** Throws ConfigError when the options can never give a fresh answer (remoteTimingProblem). */
  constructor(private readonly init: RemotePredictorInit) {
    const timing = remoteTimingProblem(init.options);
    if (timing !== null) throw new ConfigError([timing]);
    this.maxAgeMs = maxAgeOf(init.options);
    this.served = QUANTITIES.filter((q) => init.endpoints[q] !== undefined);
    this.once = new OncePerCause(init.logger);
    this.exits = counterOn(init.registry, THREAD_EXITS_METRIC, "Times the remote predictor's thread exited unexpectedly", []);
    for (const c of Object.values(REMOTE_COUNTERS)) this.mirrorOf(c.name, c.help, c.labels);
    // Zero series from the start, as the thread has them, so a dashboard can tell "no errors" from "not running".
    for (const q of this.served) for (const status of ["success", "error"]) this.count(REMOTE_COUNTERS.calls.name, { predictor: q, status }, 0);
    this.worker = this.startThread();
  }

  fill(quantity: Quantity, pods: readonly PodFeatures[], out: PoolPredictions): void {
    this.init.fallback.fill(quantity, pods, out);
    overlayRemote(quantity, pods, out, this.latest.get(quantity), this.init.clock.nowMs(), this.maxAgeMs);
  }

  /**
   * Posts the pods to the thread; settles when its answer is in, or once the values it brings could no
   * longer be fresh (maxAgeMs on the clock), or at once while the thread is down. Never rejects.
   */
  refresh(pods: readonly PodFeatures[], gridTokens: Float64Array): Promise<void> {
    if (this.closed) return Promise.resolve();
    const startedMs = this.init.clock.nowMs();
    this.forgetStale(startedMs);
    const worker = this.worker;
    if (worker === null) {
      for (const q of this.served) this.countFallback(q, "thread_down");
      return Promise.resolve();
    }
    const id = this.nextId++;
    const grid = Float64Array.from(gridTokens);
    return new Promise((resolve) => {
      const cancel = this.init.clock.schedule(this.maxAgeMs, () => this.giveUp(id));
      const inFlight = new Map(pods.map((pod) => [pod.address, { prefill: pod.prefillMsInFlight, local: pod.localPrefillMsInFlight }]));
      this.waiting.set(id, { startedMs, grid, inFlight, done: () => (cancel(), resolve()) });
      worker.postMessage({ t: "refresh", id, pods: [...pods], grid } satisfies ToRemoteThread);
    });
  }

  /** Hands a report to the thread's training buffer; counted as dropped while the thread is down. */
  addTrainingSample(quantity: Quantity, features: PodFeatures, inputTokens: number, actual: { ttftMs?: number; tpotMs?: number }, timestampMs: number): void {
    if (this.closed) return;
    if (this.worker === null) {
      if (this.served.includes(quantity)) this.count(REMOTE_COUNTERS.trainingDropped.name, { predictor: quantity, reason: "thread_down" satisfies TrainingDropReason }, 1);
      return;
    }
    this.worker.postMessage({ t: "train", quantity, features, inputTokens, actual, timestampMs } satisfies ToRemoteThread);
  }

  /** How many pods have fresh remote values for `quantity` on `grid`. */
  freshPods(quantity: Quantity, grid: Float64Array): number {
    const now = this.init.clock.nowMs();
    let fresh = 0;
    for (const v of this.latest.get(quantity)?.values() ?? []) {
      if (now - v.atMs <= this.maxAgeMs && v.grid.length === grid.length && v.grid.every((x, g) => x === grid[g])) fresh++;
    }
    return fresh;
  }

  /** How many pods the main thread holds remote values for `quantity` for, fresh or not yet forgotten. */
  heldPods(quantity: Quantity): number {
    return this.latest.get(quantity)?.size ?? 0;
  }

  /** Whether a thread is running (false between a thread's exit and its restart, and for good after too many). */
  get threadUp(): boolean {
    return this.worker !== null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelRestart?.();
    this.cancelRestart = null;
    for (const id of [...this.waiting.keys()]) this.finish(id);
    const worker = this.worker;
    this.worker = null;
    if (worker !== null) {
      worker.postMessage({ t: "close" } satisfies ToRemoteThread);
      void worker.terminate();
    }
  }

  private startThread(): Worker {
    const worker = new Worker(builtSibling(import.meta.url, "./remote-thread.js"), {
      workerData: { endpoints: this.init.endpoints, options: this.init.options },
    });
    worker.unref();
    worker.on("message", (msg: FromRemoteThread) => this.onMessage(msg));
    worker.on("error", (err) => {
      if (worker === this.worker) this.lastError = String(err);
    });
    worker.on("exit", (code) => this.onExit(worker, code));
    return worker;
  }

  /**
   * A thread that exits unasked takes its training buffer and any refresh it had not answered with it:
   * those refreshes fall back (thread_down), its counters are kept, and a new thread starts after a
   * backoff, unless it kept dying.
   */
  private onExit(worker: Worker, code: number): void {
    if (this.closed || worker !== this.worker) return;
    this.worker = null;
    this.exits.inc();
    const error = this.lastError;
    this.lastError = undefined;
    for (const mirror of this.mirrors.values()) {
      for (const v of mirror.thread) add(mirror.kept, v.labels, v.value);
      mirror.thread = [];
    }
    for (const id of [...this.waiting.keys()]) {
      for (const q of this.served) this.countFallback(q, "thread_down");
      this.finish(id);
    }
    const delayMs = THREAD_RESTART_DELAYS_MS[this.exitsInARow++];
    if (delayMs === undefined) {
      this.init.logger.log("error", "remote predictor thread keeps exiting; it stays down and pods keep the profile", {
        code,
        error,
        exitsInARow: this.exitsInARow,
      });
      return;
    }
    this.init.logger.log("error", "remote predictor thread exited; pods keep the profile until a new one starts", { code, error, restartInMs: delayMs });
    this.cancelRestart = this.init.clock.schedule(delayMs, () => {
      this.cancelRestart = null;
      if (this.closed) return;
      this.worker = this.startThread();
      this.init.logger.log("info", "remote predictor thread restarted", { exitsInARow: this.exitsInARow });
    });
  }

  /** The thread has not answered within the values' freshness limit: the refresh settles; a late answer is counted stale. */
  private giveUp(id: number): void {
    if (!this.waiting.has(id)) return;
    this.once.fail("remote thread", "overdue", "remote predictor thread has not answered a refresh within the values' freshness limit", {
      maxAgeMs: this.maxAgeMs,
    });
    this.finish(id);
  }

  private onMessage(msg: FromRemoteThread): void {
    if (this.closed) return;
    if (msg.t === "log") {
      this.init.logger.log(msg.level, msg.message, msg.fields);
      return;
    }
    this.exitsInARow = 0;
    const pending = this.waiting.get(msg.id);
    const ageMs = pending === undefined ? Infinity : this.init.clock.nowMs() - pending.startedMs;
    if (pending !== undefined) this.once.clear("remote thread", "remote predictor thread answers again");
    for (const { quantity, addresses, values, points, answered } of msg.latest) {
      if (answered === 0) continue;
      const subject = `remote ${quantity} answers`;
      if (pending === undefined || ageMs > this.maxAgeMs) {
        // Calls that answered, too late for their values to be used: a fallback like a timeout.
        this.count(REMOTE_COUNTERS.calls.name, { predictor: quantity, status: "error" }, answered);
        this.count(REMOTE_COUNTERS.fallbacks.name, { predictor: quantity, reason: "stale" }, answered);
        this.once.fail(subject, "stale", `remote ${quantity} predictor answered after the values' freshness limit; its pods use the profile`, {
          predictor: quantity,
          reason: "stale",
          detail: pending === undefined ? `no answer within ${this.maxAgeMs} ms` : `answer ${Math.round(ageMs)} ms after the refresh began, limit ${this.maxAgeMs} ms`,
        });
        continue;
      }
      this.count(REMOTE_COUNTERS.calls.name, { predictor: quantity, status: "success" }, answered);
      this.once.clear(subject, `remote ${quantity} predictor answers in time again`, { predictor: quantity });
      let map = this.latest.get(quantity);
      if (map === undefined) this.latest.set(quantity, (map = new Map()));
      addresses.forEach((address, k) => {
        map!.set(address, {
          values: values.subarray(k * points, (k + 1) * points),
          grid: pending.grid,
          atMs: pending.startedMs,
          refresh: msg.id,
          prefillMsInFlight: pending.inFlight.get(address)?.prefill ?? 0,
          localPrefillMsInFlight: pending.inFlight.get(address)?.local ?? 0,
        });
      });
    }
    this.mirror(msg.metrics as MetricJson[]);
    this.finish(msg.id);
  }

  /** Values past their freshness are never used again: pods that left (or stopped being asked about) are forgotten. */
  private forgetStale(nowMs: number): void {
    for (const map of this.latest.values()) {
      for (const [address, v] of map) if (nowMs - v.atMs > this.maxAgeMs) map.delete(address);
    }
  }

  private finish(id: number): void {
    const pending = this.waiting.get(id);
    if (pending === undefined) return;
    this.waiting.delete(id);
    pending.done();
  }

  private countFallback(quantity: Quantity, reason: FallbackReason): void {
    this.count(REMOTE_COUNTERS.calls.name, { predictor: quantity, status: "error" }, 1);
    this.count(REMOTE_COUNTERS.fallbacks.name, { predictor: quantity, reason }, 1);
  }

  /** Counts on the main thread, into a mirrored counter. */
  private count(name: string, labels: Labels, n: number): void {
    add(this.mirrors.get(name)!.kept, labels, n);
  }

  /** The thread's counters, as of its last answer, under the same names in the app's registry. */
  private mirror(metrics: MetricJson[]): void {
    for (const metric of metrics) {
      if (metric.type !== "counter") continue;
      const labelNames = [...new Set(metric.values.flatMap((v) => Object.keys(v.labels)))];
      this.mirrorOf(metric.name, metric.help, labelNames).thread = metric.values;
    }
  }

  /**
   * The mirror of a counter, registered on first use. The label names are declared up front where known:
   * a counter mirrored before its first value with none declared could never take a labelled value
   * later, and every /metrics scrape threw.
   */
  private mirrorOf(name: string, help: string, labelNames: readonly string[]): Mirror {
    let mirror = this.mirrors.get(name);
    if (mirror !== undefined) return mirror;
    const m: Mirror = { thread: [], kept: new Map() };
    this.mirrors.set(name, (mirror = m));
    const declared = Object.values(REMOTE_COUNTERS).find((c) => c.name === name)?.labels;
    registered(this.init.registry, name, Counter, () =>
      new Counter({
        name,
        help,
        labelNames: [...(declared ?? labelNames)],
        registers: [this.init.registry],
        collect() {
          this.reset();
          for (const v of m.kept.values()) this.inc(v.labels, v.value);
          for (const v of m.thread) this.inc(v.labels, v.value);
        },
      }),
    );
    return mirror;
  }
}

function add(counts: Map<string, { labels: Labels; value: number }>, labels: Labels, n: number): void {
  const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
  const slot = counts.get(key);
  if (slot === undefined) counts.set(key, { labels, value: n });
  else slot.value += n;
}
