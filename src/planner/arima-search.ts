// The main thread's side of the ARIMA order search: posts a series to the search thread and resolves
// with the model it picked. A search that fails, or outlives its timeout (the thread is then replaced),
// resolves null and the predictor keeps the model it had.

import { Worker } from "node:worker_threads";
import { OncePerCause, silentLogger, type Logger } from "../log.js";
import { builtSibling } from "../paths.js";
import type { ArimaSearchAnswer, ArimaSearchRequest, ArimaThreadData } from "./arima-thread.js";

export type { ArimaSearchAnswer };

export const ARIMA_SEARCH_DEFAULTS = Object.freeze({
  /** Real time a search may take before the thread is presumed stuck and replaced. */
  timeoutMs: 10_000,
});

/** What an ARIMA predictor needs from the search: a model for a series, or null. */
export type ArimaSearcher = (series: readonly number[], window: number) => Promise<ArimaSearchAnswer | null>;

interface Pending {
  resolve: (answer: ArimaSearchAnswer | null) => void;
  timer: NodeJS.Timeout;
}

export class ArimaSearchThread {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
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
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.once.fail("arima-search", "timeout", "ARIMA order search timed out; restarting its thread", { timeoutMs: this.timeoutMs });
        this.restart();
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, timer });
      worker.postMessage({ id, series: [...series], window } satisfies ArimaSearchRequest);
    });
  };

  get inFlight(): number {
    return this.pending.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.restart();
  }

  private ensureWorker(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(builtSibling(import.meta.url, "./arima-thread.js"), { workerData: { lowPriority: this.lowPriority } satisfies ArimaThreadData });
    worker.unref();
    worker.on("message", (answer: ArimaSearchAnswer) => {
      const p = this.pending.get(answer.id);
      if (p === undefined) return;
      this.pending.delete(answer.id);
      clearTimeout(p.timer);
      this.answered++;
      this.once.clear("arima-search", "ARIMA order search recovered");
      p.resolve(answer);
    });
    worker.on("error", (err) => {
      this.once.fail("arima-search", "thread", "ARIMA search thread failed; predictors keep their models", { error: String(err) });
      if (this.worker === worker) this.restart();
    });
    this.worker = worker;
    return worker;
  }

  /** Ends the thread; what it had not answered resolves null, and the next search starts a new one. */
  private restart(): void {
    const worker = this.worker;
    this.worker = null;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.resolve(null);
    }
    this.pending.clear();
    void worker?.terminate();
  }
}
