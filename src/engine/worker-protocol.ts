// What crosses the thread boundary to a kernel worker: the pool's shared snapshot buffer (shared, not
// copied), the optimizer parameters with a version, and the batch as one Float64Array.

import type { OptimizerParams, PickRequest, TopologyParams } from "../kernel/types.js";

/** What every kernel worker thread is started with (Piscina's workerData). */
export interface WorkerData {
  /** The thread's nice value (workers.nice). */
  nice: number;
}

export interface WorkerTask {
  pool: string;
  buffer: SharedArrayBuffer;
  params: OptimizerParams;
  topology: TopologyParams;
  /** Changes when the configuration is reloaded, so workers re-apply params only then. */
  paramsVersion: number;
  batchCapacity: number;
  requests: Float64Array;
}

const STRIDE = 8;

/** NaN stands for an absent SLO; the last number is 0 for a request that wants no fallbacks. */
export function encodeRequests(requests: readonly PickRequest[]): Float64Array {
  const out = new Float64Array(requests.length * STRIDE);
  requests.forEach((r, k) => {
    const o = k * STRIDE;
    out[o] = r.inputTokens;
    out[o + 1] = r.outputTokens;
    out[o + 2] = r.prefixHit;
    out[o + 3] = r.sloTtftMs ?? NaN;
    out[o + 4] = r.sloTpotMs ?? NaN;
    out[o + 5] = r.priority;
    out[o + 6] = r.seed;
    out[o + 7] = r.fallbacks === false ? 0 : 1;
  });
  return out;
}

export function decodeRequests(encoded: Float64Array): PickRequest[] {
  const out: PickRequest[] = [];
  for (let o = 0; o + STRIDE <= encoded.length; o += STRIDE) {
    out.push({
      inputTokens: encoded[o],
      outputTokens: encoded[o + 1],
      prefixHit: encoded[o + 2],
      sloTtftMs: Number.isNaN(encoded[o + 3]) ? undefined : encoded[o + 3],
      sloTpotMs: Number.isNaN(encoded[o + 4]) ? undefined : encoded[o + 4],
      priority: encoded[o + 5],
      seed: encoded[o + 6],
      fallbacks: encoded[o + 7] !== 0,
    });
  }
  return out;
}
