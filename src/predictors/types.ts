// The predictor stage's vocabulary (SPEC.md §4): what a predictor knows about a pod at a refresh, and
// the per-pod curves and marginal effects it writes into a pool's snapshot. Predictions are per pod
// and ISL grid point, never per pair; the kernel interpolates between grid points per request.

import type { PoolSnapshot } from "../kernel/types.js";
import type { PodRole } from "../pods/types.js";

export type PredictorKind = "profile" | "online" | "remote";

/** The three predicted quantities, named as in the seed's metric labels. */
export type Quantity = "prefill-ttft" | "decode-ttft" | "decode-tpot";
export const QUANTITIES: readonly Quantity[] = ["prefill-ttft", "decode-ttft", "decode-tpot"];

/**
 * One pod's state at a refresh: its latest scrape merged with headroom's own in-flight load. An
 * unscraped pod has zero scraped counts and its in-flight load alone.
 */
export interface PodFeatures {
  address: string;
  role: PodRole;
  tp: number;
  /** Name of the pod's latency profile. */
  profile: string;
  /** Scraped vllm:num_requests_waiting / running (0 when unscraped). */
  waiting: number;
  running: number;
  /** KV tokens in use per the last scrape (kvUsage x capacity), 0 when unscraped. */
  kvTokensUsed: number;
  kvCapacityTokens: number;
  /** In-flight picks not yet reflected by a scrape: prefill work queued here, requests and KV tokens decoding here. */
  prefillRequestsInFlight: number;
  prefillTokensInFlight: number;
  /** Predicted prefill compute (ms) of those in-flight prefills still ahead of the pod. */
  prefillMsInFlight: number;
  /** The part of it that is local prefills (picks prefilled on this pod as their decode pod). */
  localPrefillMsInFlight: number;
  decodeRequestsInFlight: number;
  decodeTokensInFlight: number;
  /** The pool's running means, for queued work whose size a scrape does not tell. */
  meanIsl: number;
  meanOsl: number;
}

/**
 * A pool's predictions: the snapshot's numbers (src/kernel/types.ts) without its identity and roles.
 * Curves are compute/wait times on the grid; the `*QueueMs`/`tpotLoadMs` arrays are the load at the
 * refresh, to which picks between refreshes add their marginal effects.
 */
export type PoolPredictions = Omit<PoolSnapshot, "version" | "roles" | "nodeIds" | "rackIds">;

/**
 * One predictor serving one or more quantities. `fill` is synchronous and cheap (it runs on the main
 * thread at every refresh); a predictor that needs I/O does it in `refresh` and fills from what it
 * last received.
 */
export interface Predictor {
  readonly kind: PredictorKind;
  /** Writes the entries of `quantity` for every pod of `pods` into out (index i = pods[i]). */
  fill(quantity: Quantity, pods: readonly PodFeatures[], out: PoolPredictions): void;
  /** Starts fetching what the next fill needs; never rejects. Absent: nothing to fetch. */
  refresh?(pods: readonly PodFeatures[], gridTokens: Float64Array): Promise<void>;
  close?(): void;
}

export function allocatePredictions(pods: number, gridTokens: Float64Array): PoolPredictions {
  const curve = () => new Float64Array(pods * gridTokens.length);
  const perPod = () => new Float64Array(pods);
  return {
    pods,
    gridTokens,
    prefillMs: curve(),
    prefillLoadMs: curve(),
    localPrefillMs: curve(),
    decodeWaitMs: curve(),
    tpotMs: curve(),
    prefillQueueMs: perPod(),
    decodeQueueMs: perPod(),
    tpotLoadMs: perPod(),
    waitPerRequestMs: perPod(),
    tpotPerRequestMs: perPod(),
    tpotPerTokenMs: perPod(),
  };
}

/** Log-spaced token counts from lo to hi inclusive, rounded to integers and strictly increasing. */
export function logGrid(points: number, lo: number, hi: number): Float64Array {
  const grid = new Float64Array(points);
  for (let g = 0; g < points; g++) {
    grid[g] = Math.round(lo * Math.pow(hi / lo, points === 1 ? 0 : g / (points - 1)));
    if (g > 0 && grid[g] <= grid[g - 1]) grid[g] = grid[g - 1] + 1;
  }
  return grid;
}
