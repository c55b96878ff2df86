// The planner's shared vocabulary: worker layouts, what a pool reports each interval, and the decisions
// the planners hand to an actuator and to `GET /v1/planner`.

export type WorkerRole = "prefill" | "decode" | "both";
export const WORKER_ROLES: readonly WorkerRole[] = ["prefill", "decode", "both"];

/** Workers of a pool by role; every worker of a pool has the pool's TP. */
export interface Layout {
  prefill: number;
  decode: number;
  /** Decode-capable workers that also prefill locally; a pool always keeps at least one. */
  both: number;
}

export const START_LAYOUT: Readonly<Layout> = Object.freeze({ prefill: 0, decode: 0, both: 1 });

export function totalWorkers(l: Layout): number {
  return l.prefill + l.decode + l.both;
}

export function sameLayout(a: Layout, b: Layout): boolean {
  return a.prefill === b.prefill && a.decode === b.decode && a.both === b.both;
}

/** What the engine knows of a pool's pods right now, each in [0, 1]; undefined when it knows nothing. */
export interface PoolUtilization {
  /** Queued prefill work as a fraction of what the pool's prefill-capable pods can hold. */
  prefillQueueUtil: number;
  /** KV cache in use across the pool's decode-capable pods. */
  kvUtil: number;
}

/** Called by each planner once per interval (and by burst checks) to read pod state. */
export type PoolUtilizationSource = (pool: string) => PoolUtilization | undefined;

/** One finished request as a completion report describes it. */
export interface CompletionObservation {
  ok: boolean;
  ttftMs?: number;
  tpotMs?: number;
  inputTokens?: number;
  outputTokens?: number;
}

/** A pool's load and latency over one adjustment interval. */
export interface IntervalObservation {
  startMs: number;
  endMs: number;
  /** Completion reports in the interval. */
  completions: number;
  /** Arrivals in the interval (observeArrival); 0 when the engine does not report arrivals. */
  arrivals: number;
  /** Requests per second: arrivals when any were reported in the interval, else completions. */
  ratePerS: number;
  /** Mean input / output tokens of the interval's completions; undefined without completions that carry them. */
  meanIsl?: number;
  meanOsl?: number;
  /** TTFT / TPOT at the pool's percentile over the interval's completions (ms); undefined without samples. */
  ttftMs?: number;
  tpotMs?: number;
  ttftMeanMs?: number;
  tpotMeanMs?: number;
  ttftSamples: number;
  tpotSamples: number;
  /** Completions that missed a target (or failed), missing TTFT targets, missing TPOT targets. */
  violations: number;
  ttftViolations: number;
  tpotViolations: number;
  /** violations / completions; undefined without completions. */
  violationRate?: number;
  /** TTFT or TPOT values over an hour, recorded as one hour (MAX_RECORDED_LATENCY_MS). */
  clampedLatencies: number;
  /** Input plus output tokens per second over the interval's completions. */
  tokensPerS: number;
  utilization?: PoolUtilization;
}

/** Why a decision was taken; also the `reason` label of headroom_planner_decisions_total. */
export type DecisionReason = "sizing" | "utilization" | "violations" | "burst" | "scale_down" | "budget";

export interface Decision {
  pool: string;
  atMs: number;
  from: Layout;
  to: Layout;
  tp: number;
  gpus: number;
  reason: DecisionReason;
  /** Human-readable reasons, most important first. */
  details: string[];
}

/** What an actuator is asked to make true. */
export interface ScaleRequest {
  pool: string;
  prefill: number;
  decode: number;
  both: number;
  /**
   * What the planner knows the pool runs, if it does; an actuator may leave alone the roles where it
   * equals the request (someone else may have scaled them since). Absent: every role is set.
   */
  from?: Layout;
  tp: number;
  gpus: number;
  reason: DecisionReason;
  details: string[];
  atMs: number;
}

/**
 * The request for decision `d`. `running` is what the planner knows the pool runs, if it does: not
 * `d.from`, what it wanted before, which a decision that failed never made true.
 */
export function scaleRequestOf(d: Decision, running: Layout | undefined): ScaleRequest {
  const request: ScaleRequest = { pool: d.pool, ...d.to, tp: d.tp, gpus: d.gpus, reason: d.reason, details: d.details, atMs: d.atMs };
  if (running !== undefined) request.from = { ...running };
  return request;
}
