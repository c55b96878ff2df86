// The `remote` predictor as the main thread sees it: the HTTP work runs in its own thread
// (remote-thread.ts); here `refresh` posts the pods' features, `fill` overlays the curves that came
// back on the profile's, and the thread's counters are mirrored into the app's registry.

import { Worker } from "node:worker_threads";
import { Counter } from "prom-client";
import { DEFAULTS } from "../config/schema.js";
import { registered } from "../metrics.js";
import { builtSibling } from "../paths.js";
import { FRESH_REFRESHES, overlayRemote, REMOTE_COUNTERS, type RemotePredictorInit, type RemoteValues } from "./remote.js";
import type { FromRemoteThread, ToRemoteThread } from "./remote-thread.js";
import type { PodFeatures, PoolPredictions, Predictor, Quantity } from "./types.js";

/** A refresh whose answer has not come back by then is given up (the thread's own calls time out sooner). */
const ANSWER_GRACE_MS = 5_000;

interface MetricJson {
  name: string;
  help: string;
  type: string;
  values: { labels: Record<string, string | number>; value: number }[];
}


export class ThreadedRemotePredictor implements Predictor {
  readonly kind = "remote" as const;
  private readonly worker: Worker;
  private readonly latest = new Map<Quantity, Map<string, RemoteValues>>();
  private readonly waiting = new Map<number, { startedMs: number; grid: Float64Array; done: () => void }>();
  private readonly mirrored = new Map<string, MetricJson>();
  readonly maxAgeMs: number;
  private nextId = 1;
  private closed = false;

  constructor(private readonly init: RemotePredictorInit) {
    this.maxAgeMs = init.options.maxAgeMs ?? FRESH_REFRESHES * (init.options.refreshMs ?? DEFAULTS.predictors.refreshMs);
    this.worker = new Worker(builtSibling(import.meta.url, "./remote-thread.js"), { workerData: { endpoints: init.endpoints, options: init.options } });
    this.worker.unref();
    this.worker.on("message", (msg: FromRemoteThread) => this.onMessage(msg));
    this.worker.on("error", (err) => init.logger.log("error", "remote predictor thread failed; pods keep the profile", { error: String(err) }));
  }

  fill(quantity: Quantity, pods: readonly PodFeatures[], out: PoolPredictions): void {
    this.init.fallback.fill(quantity, pods, out);
    overlayRemote(quantity, pods, out, this.latest.get(quantity), this.init.clock.nowMs(), this.maxAgeMs);
  }

  refresh(pods: readonly PodFeatures[], gridTokens: Float64Array): Promise<void> {
    if (this.closed) return Promise.resolve();
    const id = this.nextId++;
    const grid = Float64Array.from(gridTokens);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.finish(id), ANSWER_GRACE_MS);
      timer.unref();
      this.waiting.set(id, { startedMs: this.init.clock.nowMs(), grid, done: () => (clearTimeout(timer), resolve()) });
      this.worker.postMessage({ t: "refresh", id, pods: [...pods], grid } satisfies ToRemoteThread);
    });
  }

  addTrainingSample(quantity: Quantity, features: PodFeatures, inputTokens: number, actual: { ttftMs?: number; tpotMs?: number }, timestampMs: number): void {
    if (!this.closed) this.worker.postMessage({ t: "train", quantity, features, inputTokens, actual, timestampMs } satisfies ToRemoteThread);
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

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.postMessage({ t: "close" } satisfies ToRemoteThread);
    for (const id of [...this.waiting.keys()]) this.finish(id);
    void this.worker.terminate();
  }

  private onMessage(msg: FromRemoteThread): void {
    if (msg.t === "log") {
      this.init.logger.log(msg.level, msg.message, msg.fields);
      return;
    }
    const pending = this.waiting.get(msg.id);
    if (pending !== undefined) {
      for (const { quantity, addresses, values, points } of msg.latest) {
        let map = this.latest.get(quantity);
        if (map === undefined) this.latest.set(quantity, (map = new Map()));
        addresses.forEach((address, k) => {
          map!.set(address, { values: values.subarray(k * points, (k + 1) * points), grid: pending.grid, atMs: pending.startedMs, refresh: msg.id });
        });
      }
    }
    this.mirror(msg.metrics as MetricJson[]);
    this.finish(msg.id);
  }

  private finish(id: number): void {
    const pending = this.waiting.get(id);
    if (pending === undefined) return;
    this.waiting.delete(id);
    pending.done();
  }

  /** The thread's counters, as of its last answer, under the same names in the app's registry. */
  private mirror(metrics: MetricJson[]): void {
    for (const metric of metrics) {
      if (metric.type !== "counter") continue;
      const known = this.mirrored.has(metric.name);
      this.mirrored.set(metric.name, metric);
      if (known) continue;
      const mirrored = this.mirrored;
      // The label names as the thread declared them: a counter without values yet shows none (mirroring
      // those left it unable to take its first labelled value, and every /metrics scrape threw).
      const declared = Object.values(REMOTE_COUNTERS).find((c) => c.name === metric.name)?.labels;
      const labelNames = declared ? [...declared] : [...new Set(metric.values.flatMap((v) => Object.keys(v.labels)))];
      registered(this.init.registry, metric.name, Counter, () =>
        new Counter({
          name: metric.name,
          help: metric.help,
          labelNames,
          registers: [this.init.registry],
          collect() {
            this.reset();
            for (const v of mirrored.get(metric.name)!.values) this.inc(v.labels, v.value);
          },
        }),
      );
    }
  }
}
