// Scrapes every pod's metrics endpoint each scrapeIntervalMs and reports each outcome, metrics or the
// cause of a failure, to a sink (SPEC.md §5). What an outcome means for the pod (fresh, failing,
// stale) is the pod registry's decision, not this file's.

import { performance } from "node:perf_hooks";
import { Counter, Histogram, type Registry } from "prom-client";
import { every, type Cancel, type Clock } from "../clock.js";
import { OncePerCause, type Logger } from "../log.js";
import { registered } from "../metrics.js";
import type { ScrapeOutcome } from "./types.js";
import { parseVllmMetrics } from "./vllm-metrics.js";

/** A vLLM metrics page is tens to hundreds of KiB; anything far larger is not one. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface ScrapeTarget {
  address: string;
  metricsUrl: string;
}

export interface ScraperOptions {
  clock: Clock;
  logger: Logger;
  registry: Registry;
  scrapeIntervalMs: number;
  scrapeTimeoutMs: number;
  /** Scrapes in progress at once, across all pods. */
  scrapeConcurrency: number;
  maxBodyBytes?: number;
  /** The pods to scrape, asked again every round. */
  targets: () => Iterable<ScrapeTarget>;
  /** `fromUrl`: the URL scraped, which the pod may have changed since. */
  onOutcome: (address: string, outcome: ScrapeOutcome, fromUrl: string) => void;
}

export class Scraper {
  private readonly once: OncePerCause;
  private readonly scrapes: Counter<"result">;
  private readonly durationSeconds: Histogram;
  private readonly maxBodyBytes: number;
  /**
   * One controller per scrape in progress, which its timeout and close() abort. Not a timeout signal
   * joined by AbortSignal.any to one long-lived closing signal: on Node 20 every such join leaves an
   * entry on the long-lived signal for its whole life (nodejs/node#55351), about 60 bytes a scrape.
   */
  private readonly aborts = new Set<AbortController>();
  /** Pods with a scrape queued or in progress: a round skips them rather than pile up behind a slow pod. */
  private readonly inFlight = new Set<string>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly waiting: ((gotSlot: boolean) => void)[] = [];
  private active = 0;
  /** The addresses of the last round, so a pod that left can have its logging state dropped. */
  private known = new Set<string>();
  private stopLoop: Cancel | undefined;
  private closed = false;

  constructor(private readonly options: ScraperOptions) {
    this.once = new OncePerCause(options.logger);
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.scrapes = registered(
      options.registry,
      "headroom_pod_scrapes_total",
      Counter,
      () =>
        new Counter({
          name: "headroom_pod_scrapes_total",
          help: "Pod metric scrapes by result: ok, a failure cause (HTTP statuses by class), or skipped (the previous scrape of the pod was still in flight)",
          labelNames: ["result"],
          registers: [options.registry],
        }),
    );
    this.durationSeconds = registered(
      options.registry,
      "headroom_pod_scrape_duration_seconds",
      Histogram,
      () =>
        new Histogram({
          name: "headroom_pod_scrape_duration_seconds",
          help: "Time from sending a scrape to having its outcome (parsed metrics or the failure)",
          buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
          registers: [options.registry],
        }),
    );
  }

  /** Scrapes every scrapeIntervalMs from now on, first after one interval. */
  start(): void {
    if (this.closed || this.stopLoop !== undefined) return;
    this.stopLoop = every(this.options.clock, this.options.scrapeIntervalMs, () => {
      this.round().catch((error: unknown) =>
        this.options.logger.log("error", "pod scrape round failed", { error: String(error) }),
      );
    });
  }

  /**
   * Starts a scrape of every target not already in flight, and settles when all of them have been
   * reported. Rejects if `targets` or the sink throws.
   */
  async round(): Promise<void> {
    if (this.closed) return;
    const present = new Set<string>();
    const started: Promise<void>[] = [];
    for (const target of this.options.targets()) {
      if (present.has(target.address)) continue;
      present.add(target.address);
      if (this.inFlight.has(target.address)) {
        this.scrapes.inc({ result: "skipped" });
        continue;
      }
      started.push(this.track(this.scrapeInTurn(target)));
    }
    for (const address of this.known) if (!present.has(address)) this.once.forget(address);
    this.known = present;
    await Promise.all(started);
  }

  /** Stops the rounds, aborts the scrapes in progress and settles when they have; nothing is reported after. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopLoop?.();
    for (const abort of this.aborts) abort.abort();
    for (const wake of this.waiting.splice(0)) wake(false);
    await Promise.allSettled([...this.tasks]);
  }

  private track(task: Promise<void>): Promise<void> {
    this.tasks.add(task);
    const untrack = () => this.tasks.delete(task);
    task.then(untrack, untrack);
    return task;
  }

  private async scrapeInTurn(target: ScrapeTarget): Promise<void> {
    this.inFlight.add(target.address);
    let gotSlot = false;
    try {
      gotSlot = await this.acquire();
      if (!gotSlot) return;
      const outcome = await this.scrape(target);
      if (this.closed) return;
      this.record(target, outcome);
      this.options.onOutcome(target.address, outcome, target.metricsUrl);
    } finally {
      if (gotSlot) this.release();
      this.inFlight.delete(target.address);
    }
  }

  private acquire(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.active < this.options.scrapeConcurrency) {
      this.active++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next queued scrape, if any. */
  private release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(true);
    else this.active--;
  }

  private async scrape(target: ScrapeTarget): Promise<ScrapeOutcome> {
    const scrapedAtMs = this.options.clock.nowMs();
    // Duration is real I/O time, measured on the real clock even when the engine runs on another.
    const startedMs = performance.now();
    const abort = new AbortController();
    this.aborts.add(abort);
    if (this.closed) abort.abort();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, this.options.scrapeTimeoutMs);
    timer.unref();
    let outcome: ScrapeOutcome;
    try {
      const response = await fetch(target.metricsUrl, {
        signal: abort.signal,
        headers: {
          // Without it, prometheus_client may answer in OpenMetrics, which the parser does not read.
          accept: "text/plain;version=0.0.4",
          // Without it, prometheus_client gzips the page on vLLM's serving loop, to save bytes that
          // cost nothing inside a cluster.
          "accept-encoding": "identity",
        },
      });
      if (!response.ok) {
        discard(response);
        outcome = failed(`http_${response.status}`, `${target.metricsUrl} answered ${response.status} ${response.statusText}`);
      } else {
        const text = await readCapped(response, this.maxBodyBytes);
        outcome =
          text === undefined
            ? failed("too_large", `${target.metricsUrl} sent more than ${this.maxBodyBytes} bytes`)
            : parseVllmMetrics(text, scrapedAtMs);
      }
    } catch (error) {
      outcome = timedOut
        ? failed("timeout", `${target.metricsUrl} did not answer within ${this.options.scrapeTimeoutMs} ms`)
        : failed("connection", `${target.metricsUrl}: ${describe(error)}`);
    } finally {
      clearTimeout(timer);
      this.aborts.delete(abort);
    }
    this.durationSeconds.observe((performance.now() - startedMs) / 1000);
    return outcome;
  }

  private record(target: ScrapeTarget, outcome: ScrapeOutcome): void {
    if (outcome.ok) {
      this.scrapes.inc({ result: "ok" });
      this.once.clear(target.address, "pod scrape recovered", { metricsUrl: target.metricsUrl });
    } else {
      this.scrapes.inc({ result: resultLabel(outcome.cause) });
      this.once.fail(target.address, outcome.cause, "pod scrape failed", {
        metricsUrl: target.metricsUrl,
        message: outcome.message,
      });
    }
  }
}

/** The body as text, or undefined when it exceeds maxBytes (the connection is then dropped). */
async function readCapped(response: Response, maxBytes: number): Promise<string | undefined> {
  if (Number(response.headers.get("content-length")) > maxBytes) {
    discard(response);
    return undefined;
  }
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, bytes).toString("utf8");
}

/** Drops a body we will not read, so the connection is not kept waiting for it. */
function discard(response: Response): void {
  response.body?.cancel().catch(() => {});
}

function failed(cause: string, message: string): ScrapeOutcome {
  return { ok: false, cause, message };
}

/** The metric label of a cause: HTTP statuses by class, so the label's values stay few. */
function resultLabel(cause: string): string {
  return /^http_\d{3}$/.test(cause) ? `http_${cause[5]}xx` : cause;
}

/** fetch reports network failures as "fetch failed" with the real reason in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error) return `${error.message} (${(cause as NodeJS.ErrnoException).code ?? cause.message})`;
  return error.message;
}
