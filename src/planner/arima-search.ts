// The main thread's side of the ARIMA order search: posts a series to the search thread and resolves
// with the model it picked. A search that fails, or outlives its timeout (the thread is then replaced),
// resolves null and the predictor keeps the model it had; the searches queued behind it are not failed.

import { Worker } from "node:worker_threads";
import { OncePerCause, silentLogger, type Logger } from "../log.js";
import { builtSibling } from "../paths.js";
import type { ArimaSearchAnswer, ArimaSearchRequest, ArimaThreadData } from "./arima-thread.js";

export type { ArimaSearchAnswer };

export const ARIMA_SEARCH_DEFAULTS = Object.freeze({
  /** Real time a search may run (from when it is sent to the thread) before the thread is presumed stuck and replaced. */
  timeoutMs: 10_000,
});

/** What an ARIMA predictor needs from the search: a model for a series, or null. */
export type ArimaSearcher = (series: readonly number[], window: number) => Promise<ArimaSearchAnswer | null>;

interface Job {
  id: number;
  series: number[];
  window: number;
  resolve: (answer: ArimaSearchAnswer | null) => void;
}

/**
 * Searches go to the thread one at a time, and a search's timeout starts when it is sent: the thread
 * runs them one after another anyway, and pools share the interval phase, so several predictors ask at
 * once. Timed from when they were asked, the later ones would be charged the earlier ones' run time
 * (at a 1 s timeout and ~300 ms searches, the fourth of six timed out while still queued). A search that
 * overruns fails alone: the thread is replaced and the searches queued behind it go to the new one.
 */
export class ArimaSearchThread {
  private worker: Worker | null = null;
  /** Asked, not yet sent to the thread. */
  private readonly queue: Job[] = [];
  /** Sent to the thread, with its timeout. */
  private running: { job: Job; timer: NodeJS.Timeout } | null = null;
  private readonly once: OncePerCause;
  private readonly timeoutMs: number;
  private nextId = 1;
  private closed = false;
  /** Searches answered, for tests and state. */
  answered = 0;

  private readonly lowPriority: boolean;

  /** lowPriority (default true): the thread runs at the lowest priority, so fits give way to picks (arima-thread.ts). */
  constructor(options: { logger?: Logger; timeoutMs?: number; lowPriority?: boolean } = {}) {
    this.once = new OncePerCause(options.logger ?? silentLogger);
    this.timeoutMs = options.timeoutMs ?? ARIMA_SEARCH_DEFAULTS.timeoutMs;
    this.lowPriority = options.lowPriority ?? true;
  }

  /** Bound to this thread, for ArimaPredictor. */
  readonly search: ArimaSearcher = (series, window) => {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextId++, series: [...series], window, resolve });
      this.sendNext();
    });
  };

  get inFlight(): number {
    return this.queue.length + (this.running === null ? 0 : 1);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.finishRunning(null);
    for (const job of this.queue.splice(0)) job.resolve(null);
    this.endWorker();
  }

  /** Sends the next queued search when none runs; its timeout starts now. */
  private sendNext(): void {
    if (this.closed || this.running !== null) return;
    const job = this.queue.shift();
    if (job === undefined) return;
    const worker = this.ensureWorker();
    const timer = setTimeout(() => {
      if (this.running?.job !== job) return;
      this.once.fail("arima-search", "timeout", "ARIMA order search timed out; restarting its thread", { timeoutMs: this.timeoutMs });
      this.finishRunning(null);
      this.endWorker();
      this.sendNext();
    }, this.timeoutMs);
    timer.unref();
    this.running = { job, timer };
    worker.postMessage({ id: job.id, series: job.series, window: job.window } satisfies ArimaSearchRequest);
  }

  /** Resolves the search the thread runs, if any. */
  private finishRunning(answer: ArimaSearchAnswer | null): void {
    const running = this.running;
    if (running === null) return;
    this.running = null;
    clearTimeout(running.timer);
    running.job.resolve(answer);
  }

  private ensureWorker(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(builtSibling(import.meta.url, "./arima-thread.js"), { workerData: { lowPriority: this.lowPriority } satisfies ArimaThreadData });
    worker.unref();
    worker.on("message", (answer: ArimaSearchAnswer) => {
      if (this.worker !== worker || this.running?.job.id !== answer.id) return;
      this.answered++;
      this.once.clear("arima-search", "ARIMA order search recovered");
      this.finishRunning(answer);
      this.sendNext();
    });
    worker.on("error", (err) => {
      if (this.worker !== worker) return;
      this.once.fail("arima-search", "thread", "ARIMA search thread failed; predictors keep their models", { error: String(err) });
      // The search it ran fails; the queued ones go to a new thread.
      this.finishRunning(null);
      this.endWorker();
      this.sendNext();
    });
    this.worker = worker;
    return worker;
  }

  /** Ends the thread; the next search sent starts a new one. */
  private endWorker(): void {
    const worker = this.worker;
    this.worker = null;
    void worker?.terminate();
  }
}
