// How a planner's decision reaches the world: an Actuator applies one scale request; the applier runs
// each pool's latest decision through it with bounded retries and exponential backoff on the clock,
// and reports what happened. The planner keeps its decision whether or not it could be applied.

import type { Cancel, Clock } from "../clock.js";
import { messageOf } from "../errors.js";
import { OncePerCause, type Logger } from "../log.js";
import type { Layout, ScaleRequest } from "./types.js";

export interface Actuator {
  /** `advisory`, `kubernetes`, `webhook`, `simulator` or a caller's own; a metric label. */
  readonly kind: string;
  /** Resolves once the request holds; rejects with an Error saying why it does not. */
  apply(request: ScaleRequest): Promise<void>;
  /**
   * The workers `pool` runs now, by role; undefined when the actuator cannot tell for this pool.
   * Rejects when it should know but cannot read it (the API is down). Without it, a planner assumes
   * its pool runs what it decided, from one `both` worker at start.
   */
  read?(pool: string): Promise<Layout | undefined>;
  close?(): void;
}

/** The default: decisions are logged and shown in metrics and `GET /v1/planner`, nothing is changed. */
export class AdvisoryActuator implements Actuator {
  readonly kind = "advisory";

  constructor(private readonly logger: Logger) {}

  async apply(request: ScaleRequest): Promise<void> {
    const { pool, prefill, decode, both, tp, gpus, reason } = request;
    this.logger.log("info", "planner advises", { pool, prefill, decode, both, tp, gpus, reason });
  }
}

/** What the simulator implements to receive decisions. */
export interface SimulatedCluster {
  apply(pool: string, workers: { prefill: number; decode: number; both: number; tp: number }): void | Promise<void>;
}

export class SimulatorActuator implements Actuator {
  readonly kind = "simulator";

  constructor(private readonly cluster: SimulatedCluster) {}

  async apply(request: ScaleRequest): Promise<void> {
    const { pool, prefill, decode, both, tp } = request;
    await this.cluster.apply(pool, { prefill, decode, both, tp });
  }
}

export const APPLY_DEFAULTS = Object.freeze({
  /** Tries per decision before it is reported failed (it is tried again at the pool's next interval). */
  attempts: 4,
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
});

export type ApplyStatus = "none" | "applying" | "applied" | "failed";

export interface ApplyState {
  status: ApplyStatus;
  /** The request being applied, or the last one. */
  request: ScaleRequest | null;
  attempts: number;
  lastError: string | null;
  appliedAtMs: number | null;
  failures: number;
}

export interface DecisionApplierOptions {
  pool: string;
  actuator: Actuator;
  clock: Clock;
  logger: Logger;
  attempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  onApplied?: (request: ScaleRequest) => void;
  /** Each failed attempt, e.g. for a counter. */
  onFailure?: (error: string) => void;
}

/**
 * Applies a pool's decisions one at a time, newest first: a decision submitted while another is being
 * applied replaces it after the current attempt. A failed attempt is retried after 1, 2, 4… x
 * initialBackoffMs (capped) until `attempts` are spent; then the decision is reported failed and
 * waits for `retry()`.
 */
export class DecisionApplier {
  private readonly once: OncePerCause;
  private current: ScaleRequest | null = null;
  private queued: ScaleRequest | null = null;
  private running = false;
  private cancelRetry: Cancel | null = null;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => {};
  private readonly s: ApplyState = { status: "none", request: null, attempts: 0, lastError: null, appliedAtMs: null, failures: 0 };

  constructor(private readonly o: DecisionApplierOptions) {
    this.once = new OncePerCause(o.logger);
  }

  submit(request: ScaleRequest): void {
    if (this.closed) return;
    if (this.running) {
      this.queued = request;
      return;
    }
    this.cancelRetry?.();
    this.cancelRetry = null;
    this.start(request);
  }

  /** Tries a failed decision again from its first attempt; nothing else changes. */
  retry(): void {
    if (this.s.status === "failed" && this.current !== null && !this.running && this.cancelRetry === null) this.start(this.current);
  }

  state(): ApplyState {
    return { ...this.s };
  }

  get actuatorKind(): string {
    return this.o.actuator.kind;
  }

  /** Whether the actuator can say what the pool runs (Actuator.read). */
  get canRead(): boolean {
    return this.o.actuator.read !== undefined;
  }

  /** What the actuator says the pool runs; undefined when it cannot tell. */
  async read(): Promise<Layout | undefined> {
    return this.o.actuator.read?.(this.o.pool);
  }

  /** Resolves when no attempt is running or waiting for its backoff. */
  settled(): Promise<void> {
    return this.idle;
  }

  close(): void {
    this.closed = true;
    this.cancelRetry?.();
    this.cancelRetry = null;
    this.queued = null;
    if (!this.running) this.markIdle();
  }

  private start(request: ScaleRequest): void {
    if (this.s.status !== "applying") this.idle = new Promise((resolve) => (this.markIdle = resolve));
    this.current = request;
    this.s.status = "applying";
    this.s.request = request;
    this.s.attempts = 0;
    this.attempt(request);
  }

  private attempt(request: ScaleRequest): void {
    this.cancelRetry = null;
    this.running = true;
    this.s.attempts++;
    // An actuator of a caller's own may throw instead of rejecting: that is a failed attempt too, not
    // an error out of submit() that would leave this applier running forever.
    let applying: Promise<void>;
    try {
      applying = this.o.actuator.apply(request);
    } catch (err) {
      applying = Promise.reject(err);
    }
    applying.then(
      () => this.finished(request, null),
      (err: unknown) => this.finished(request, messageOf(err)),
    );
  }

  private finished(request: ScaleRequest, error: string | null): void {
    this.running = false;
    if (error === null) {
      this.s.status = "applied";
      this.s.lastError = null;
      this.s.appliedAtMs = this.o.clock.nowMs();
      this.once.clear(this.subject, "planner decision applied again", { pool: this.o.pool, actuator: this.o.actuator.kind });
      this.o.onApplied?.(request);
    } else {
      this.s.failures++;
      this.s.lastError = error;
      this.o.onFailure?.(error);
      this.once.fail(this.subject, causeOf(error), "planner decision could not be applied; retrying", {
        pool: this.o.pool,
        actuator: this.o.actuator.kind,
        error,
      });
    }
    if (this.closed) {
      this.markIdle();
      return;
    }
    const next = this.queued;
    this.queued = null;
    if (next !== null) {
      this.start(next);
      return;
    }
    if (error === null) {
      this.markIdle();
      return;
    }
    const attempts = this.o.attempts ?? APPLY_DEFAULTS.attempts;
    if (this.s.attempts >= attempts) {
      this.s.status = "failed";
      this.o.logger.log("error", "planner decision failed; kept, and tried again at the next interval", {
        pool: this.o.pool,
        actuator: this.o.actuator.kind,
        attempts: this.s.attempts,
        error,
      });
      this.markIdle();
      return;
    }
    const initial = this.o.initialBackoffMs ?? APPLY_DEFAULTS.initialBackoffMs;
    const max = this.o.maxBackoffMs ?? APPLY_DEFAULTS.maxBackoffMs;
    const delayMs = Math.min(max, initial * 2 ** (this.s.attempts - 1));
    this.cancelRetry = this.o.clock.schedule(delayMs, () => this.attempt(request));
  }

  private get subject(): string {
    return `planner-apply:${this.o.pool}`;
  }
}

/** A stable cause for once-per-cause logging: the HTTP status when the message names one. */
function causeOf(error: string): string {
  const m = /\b(?:HTTP|status|code)[^0-9]{0,12}(\d{3})\b/i.exec(error);
  return m ? `http_${m[1]}` : error.slice(0, 60);
}
