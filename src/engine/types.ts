// The engine's contract with the front end (SPEC.md §6–7): what a pick asks, what it answers, and the
// other operations the HTTP and WebSocket routes call. The server decodes and validates wire formats
// into these shapes; the engine knows nothing of HTTP.

import type { HeadroomError } from "../errors.js";
import type { CompletionReport } from "./cluster.js";
import type { Outcome } from "../kernel/types.js";
import type { PodSpec } from "../pods/types.js";

export type { CompletionReport };

/** One pick request after decoding (JSON or msgpack body, or gateway headers). */
export interface PickInput {
  /** Generated when absent. */
  requestId?: string;
  /** Level name, case-insensitive; absent: the default pool. */
  sloLevel?: string;
  /** Prompt tokens (the server estimates them from a prompt as length / 4). Absent: the pool's running mean. */
  inputTokens?: number;
  /** maxTokens; absent: the pool's running mean. */
  outputTokens?: number;
  /** Fraction of the prompt already cached, [0, 1]; default 0. */
  prefixHit?: number;
  /** Explicit targets override the pool's. */
  sloTtftMs?: number;
  sloTpotMs?: number;
  /** Negative: sheddable. Default 0. */
  priority?: number;
  /** 32-bit seed of the pick's uniforms; drawn when absent. */
  seed?: number;
  /** Include the best pairs with their numbers. */
  explain?: boolean;
}

/** One candidate pair with its numbers, for `explain`. */
export interface ExplainedPair {
  prefill?: string;
  decode: string;
  link: "node" | "rack" | "cross" | "local";
  ttftMs: number;
  tpotMs: number;
  headroomTtftMs?: number;
  headroomTpotMs?: number;
  blended?: number;
  positive: boolean;
}

/** A successful pick, shaped as SPEC.md §7's response. */
export interface PickAnswer {
  requestId: string;
  pool: string;
  outcome: Outcome;
  decodeOnly: boolean;
  /** Absent for local prefill. */
  prefill?: string;
  decode: string;
  fallbacks: string[];
  predicted: { prefillTtftMs: number; decodeTtftMs: number; transferMs: number; ttftMs: number; tpotMs: number };
  /** A field is absent when its SLO is unconstrained. */
  headroom: { ttftMs?: number; tpotMs?: number; blended?: number };
  headers: Record<string, string>;
  /** Pairs considered and how many were predicted to meet the SLO. */
  pairs: number;
  positivePairs: number;
  explain?: ExplainedPair[];
}

/** `POST /v1/route`. */
export interface RouteAnswer {
  pool: string;
  targets: { ttftMs: number; tpotMs: number };
  sloPriority: number;
}

/** `PUT /v1/pods` body item: a pod as any source describes it. */
export type PodPush = PodSpec;

/** `GET /readyz`. */
export interface Readiness {
  ready: boolean;
  /** Why not, one line each. */
  reasons: string[];
}

/** A batch's answers in its order: each pick's answer, or the error that answers it. */
export type PickAnswers = (PickAnswer | HeadroomError)[];

/**
 * What the server calls. Errors are HeadroomErrors with stable codes (src/errors.ts) that the server
 * maps to HTTP statuses: REQUEST_INVALID, UNKNOWN_LEVEL, UNKNOWN_POOL, NOT_FOUND (400/404), SHED (429),
 * NO_CANDIDATES, OVERLOADED, WORKER_FAILED, NOT_READY (503).
 */
export interface EngineApi {
  /** Level (case-insensitive; absent: the default pool) to pool; throws UNKNOWN_LEVEL naming the known levels. */
  route(sloLevel: string | undefined): RouteAnswer;
  /**
   * Picks for a batch, in order. Never rejects: an item that cannot be served is a HeadroomError in its
   * place (UNKNOWN_LEVEL, REQUEST_INVALID, SHED, NO_CANDIDATES, WORKER_FAILED, ...).
   */
  pick(inputs: readonly PickInput[]): Promise<PickAnswers>;
  /** `pick` with a callback: batched with what else arrives this loop turn, `done` called with the answers. */
  pickQueued(inputs: readonly PickInput[], done: (answers: PickAnswers) => void): void;
  /**
   * Picks that are a batch already (a stream frame), run at once rather than with what else arrives
   * this loop turn: `done` is called before this returns when they run on the main thread, no batch
   * window is configured and no pick is queued ahead of them; otherwise when their batch is done.
   * `fallbacks: false` ranks none (the answers' lists are empty): a stream answer carries none.
   */
  pickBatch(inputs: readonly PickInput[], done: (answers: PickAnswers) => void, options?: { fallbacks?: boolean }): void;
  /** Releases in-flight load and learns; returns how many request ids were known. Throws REQUEST_INVALID for a bad item (none applied). */
  report(reports: readonly CompletionReport[]): { known: number; unknown: number };
  /**
   * Releases the load of the picks among `answers` that could not be delivered (the client went away
   * first), so no request follows them; nothing is learned, errors are skipped. Returns how many were
   * still in flight.
   */
  withdraw(answers: PickAnswers): number;
  /** Upserts pushed pods (all or none: UNKNOWN_POOL / REQUEST_INVALID). */
  upsertPods(pods: readonly PodPush[]): void;
  /** Deletes a pod by address; false when unknown. */
  deletePod(address: string): boolean;
  /**
   * SPEC.md's readiness: kernel loaded, workers up, every pool with a snapshot and a candidate pair.
   * `replicaOnly` leaves out the candidate pairs, which are the cluster's state, not this replica's.
   */
  ready(replicaOnly?: boolean): Readiness;
  /** `GET /v1/state`: pools, pods (freshness, why excluded, in-flight load), snapshot versions. */
  state(): unknown;
  /** `GET /v1/planner`: planner decisions with reasons. */
  planner(): unknown;
}
