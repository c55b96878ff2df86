// The kernel's vocabulary: a pool snapshot, a request, the optimizer parameters and a pick result.
// Shared by the WebAssembly kernel wrapper, the TypeScript twin and the brute-force oracle.

export type HeadroomStrategy = "most" | "least" | "best";
export type LocalPrefillMode = "never" | "threshold" | "compete";

/** SPEC.md §2 parameters, already validated (see src/config). */
export interface OptimizerParams {
  ttftWeight: number;
  tpotWeight: number;
  transferOverheadMs: number;
  sloBufferFactor: number;
  negativeHeadroomProb: number;
  headroomStrategy: HeadroomStrategy;
  localPrefill: LocalPrefillMode;
  /** Uncached prompt tokens below which local prefill is allowed (mode `threshold`); 0 disables. */
  pdThreshold: number;
  /** Number of fallback decode pods returned with each pick (at most MAX_FALLBACKS). */
  fallbacks: number;
  shedSheddable: boolean;
}

/** KV transfer cost by link class. kvBytesPerToken 0 means no topology: transfer is the constant overhead. */
export interface TopologyParams {
  kvBytesPerToken: number;
  bandwidthGBps: { node: number; rack: number; cross: number };
}

export const MAX_FALLBACKS = 8;

export const ROLE_PREFILL = 1;
export const ROLE_DECODE = 2;
/** Fresh and not draining. */
export const ROLE_ELIGIBLE = 4;

/**
 * One pool's pods and their predictor entries. Per-pod curves are sampled on a shared ISL grid and
 * stored grid-major (`curve[g * pods + i]`); the kernel interpolates linearly between grid points and
 * extrapolates the last segment beyond the grid.
 */
export interface PoolSnapshot {
  version: number;
  pods: number;
  /** Strictly increasing token counts, at least one point. */
  gridTokens: Float64Array;
  /** ROLE_* bits per pod. */
  roles: Uint8Array;
  /** Dense link ids; -1 when unknown (the pod then shares no node or rack). Nodes are qualified by rack. */
  nodeIds: Int32Array;
  rackIds: Int32Array;
  /**
   * Prefill time on pod i for the g-th grid value of uncached prompt tokens: its compute, or a remote
   * predictor's TTFT, which holds the wait behind the pod's queue too (prefillQueueMs is then 0).
   */
  prefillMs: Float64Array;
  /**
   * The prefill compute one more request of the g-th grid value adds to pod i's queue: prefillMs
   * where that is compute alone, the profile's (or online) compute where a remote TTFT replaced it.
   */
  prefillLoadMs: Float64Array;
  /** Prefill compute time when decode pod i prefills locally. */
  localPrefillMs: Float64Array;
  /** Wait until decode pod i can start a request of the g-th grid ISL, KV admission included. */
  decodeWaitMs: Float64Array;
  /** Time per output token on decode pod i for a request of the g-th grid ISL. */
  tpotMs: Float64Array;
  /** Queued prefill work on pod i (ms) not in the curves: in-flight load since the last refresh. */
  prefillQueueMs: Float64Array;
  /** Extra decode wait on pod i (ms) from in-flight load since the last refresh. */
  decodeQueueMs: Float64Array;
  /** Extra TPOT on pod i (ms) from in-flight load since the last refresh. */
  tpotLoadMs: Float64Array;
  /** Marginal effects of one more request on decode pod i. */
  waitPerRequestMs: Float64Array;
  tpotPerRequestMs: Float64Array;
  /** TPOT added per KV token (ISL + OSL) of one more request. */
  tpotPerTokenMs: Float64Array;
}

export interface PickRequest {
  inputTokens: number;
  /** maxTokens, or the pool's running mean when absent. */
  outputTokens: number;
  /** Fraction of the prompt already cached, in [0, 1]. */
  prefixHit: number;
  /** Absent (undefined) means unconstrained. */
  sloTtftMs?: number;
  sloTpotMs?: number;
  /** Negative means sheddable. */
  priority: number;
  /** 32-bit seed of the request's uniforms. */
  seed: number;
  /**
   * false: ranks no fallbacks, whatever the parameters' `fallbacks` says (a stream answer carries none,
   * SPEC.md §7); absent or true: ranks them.
   */
  fallbacks?: boolean;
}

export type Outcome =
  | "positive_headroom"
  | "negative_headroom"
  | "explore"
  | "no_slo"
  | "shed"
  | "no_candidates"
  | "invalid_request";

export const OUTCOMES: readonly Outcome[] = [
  "positive_headroom",
  "negative_headroom",
  "explore",
  "no_slo",
  "shed",
  "no_candidates",
  "invalid_request",
];

export interface PickResult {
  outcome: Outcome;
  /** Pod index of the prefill pod; -1 when the decode pod prefills locally or nothing was picked. */
  prefill: number;
  /** Pod index of the decode pod; -1 when nothing was picked. */
  decode: number;
  decodeOnly: boolean;
  fallbacks: number[];
  prefillTtftMs: number;
  decodeTtftMs: number;
  transferMs: number;
  ttftMs: number;
  tpotMs: number;
  /** NaN when the SLO is unconstrained or nothing was picked. */
  headroomTtftMs: number;
  headroomTpotMs: number;
  blended: number;
  /** Candidate pairs considered, and how many of them were predicted to meet the SLO. */
  pairs: number;
  positivePairs: number;
  version: number;
}
