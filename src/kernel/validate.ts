// Input checks shared by every implementation of the kernel: a snapshot or a request that fails them
// never reaches the selection.

import { SnapshotError } from "../errors.js";
import type { OptimizerParams, PickRequest, PoolSnapshot, TopologyParams } from "./types.js";
import { MAX_FALLBACKS } from "./types.js";

export const MAX_TOKENS = 10_000_000;
export const MAX_SLO_MS = 1_000_000_000;
export const MAX_PODS = 65_536;
export const MAX_GRID_POINTS = 64;

const CURVES = ["prefillMs", "prefillLoadMs", "localPrefillMs", "decodeWaitMs", "tpotMs"] as const;
const LOADS = [
  "prefillQueueMs",
  "decodeQueueMs",
  "tpotLoadMs",
  "waitPerRequestMs",
  "tpotPerRequestMs",
  "tpotPerTokenMs",
] as const;

/** Throws SnapshotError naming the first field that is malformed. */
export function validateSnapshot(snap: PoolSnapshot): void {
  const n = snap.pods;
  if (!Number.isInteger(n) || n < 0 || n > MAX_PODS) {
    throw new SnapshotError(`pods must be an integer in [0, ${MAX_PODS}], got ${n}`);
  }
  if (!Number.isInteger(snap.version) || snap.version < 0 || snap.version > 0xffffffff) {
    throw new SnapshotError(`version must be a 32-bit unsigned integer, got ${snap.version}`);
  }
  const g = snap.gridTokens.length;
  if (g < 1 || g > MAX_GRID_POINTS) {
    throw new SnapshotError(`gridTokens must have 1 to ${MAX_GRID_POINTS} points, got ${g}`);
  }
  for (let i = 0; i < g; i++) {
    const x = snap.gridTokens[i];
    if (!Number.isFinite(x) || x < 0 || (i > 0 && !(x > snap.gridTokens[i - 1]))) {
      throw new SnapshotError(`gridTokens must be finite, non-negative and strictly increasing; point ${i} is ${x}`);
    }
  }
  for (const name of CURVES) checkValues(snap, name, g * n);
  for (const name of LOADS) checkValues(snap, name, n);
  for (const name of ["roles", "nodeIds", "rackIds"] as const) {
    if (snap[name].length !== n) throw new SnapshotError(`${name} must have ${n} entries, got ${snap[name].length}`);
  }
}

/** The in-flight loads a snapshot gains between publications; throws SnapshotError naming the first bad one. */
export const IN_FLIGHT_LOADS = ["prefillQueueMs", "decodeQueueMs", "tpotLoadMs"] as const;

export function validateLoads(snap: PoolSnapshot): void {
  for (const name of IN_FLIGHT_LOADS) checkValues(snap, name, snap.pods);
}

function checkValues(snap: PoolSnapshot, name: (typeof CURVES)[number] | (typeof LOADS)[number], length: number): void {
  const values = snap[name];
  if (values.length !== length) throw new SnapshotError(`${name} must have ${length} entries, got ${values.length}`);
  for (let i = 0; i < length; i++) {
    const v = values[i];
    if (!Number.isFinite(v) || v < 0) {
      throw new SnapshotError(`${name}[${i}] must be finite and >= 0, got ${v}`, { field: name, index: i });
    }
  }
}

/** Why a request cannot be picked for, or null. The kernel applies the same rules. */
export function requestProblem(req: PickRequest): string | null {
  if (!inRange(req.inputTokens, 0, MAX_TOKENS)) return `inputTokens must be in [0, ${MAX_TOKENS}], got ${req.inputTokens}`;
  if (!inRange(req.outputTokens, 0, MAX_TOKENS)) return `outputTokens must be in [0, ${MAX_TOKENS}], got ${req.outputTokens}`;
  if (!inRange(req.prefixHit, 0, 1)) return `prefixHit must be in [0, 1], got ${req.prefixHit}`;
  if (req.sloTtftMs !== undefined && !(inRange(req.sloTtftMs, 0, MAX_SLO_MS) && req.sloTtftMs > 0)) {
    return `sloTtftMs must be in (0, ${MAX_SLO_MS}], got ${req.sloTtftMs}`;
  }
  if (req.sloTpotMs !== undefined && !(inRange(req.sloTpotMs, 0, MAX_SLO_MS) && req.sloTpotMs > 0)) {
    return `sloTpotMs must be in (0, ${MAX_SLO_MS}], got ${req.sloTpotMs}`;
  }
  if (typeof req.priority !== "number" || !Number.isFinite(req.priority)) return `priority must be a finite number, got ${req.priority}`;
  if (!Number.isInteger(req.seed) || req.seed < 0 || req.seed > 0xffffffff) return `seed must be a 32-bit unsigned integer, got ${req.seed}`;
  return null;
}

function inRange(v: unknown, lo: number, hi: number): v is number {
  return typeof v === "number" && v >= lo && v <= hi;
}

/** Parameters are validated by the config schema; this guards direct callers of the kernel. */
export function paramsProblem(params: OptimizerParams, topology: TopologyParams): string | null {
  const p = params;
  if (!(p.ttftWeight >= 0 && Number.isFinite(p.ttftWeight))) return `ttftWeight must be >= 0, got ${p.ttftWeight}`;
  if (!(p.tpotWeight >= 0 && Number.isFinite(p.tpotWeight))) return `tpotWeight must be >= 0, got ${p.tpotWeight}`;
  if (!(p.transferOverheadMs >= 0 && Number.isFinite(p.transferOverheadMs))) return `transferOverheadMs must be >= 0, got ${p.transferOverheadMs}`;
  if (!(p.sloBufferFactor > 0 && p.sloBufferFactor <= 1)) return `sloBufferFactor must be in (0, 1], got ${p.sloBufferFactor}`;
  if (!(p.negativeHeadroomProb >= 0 && p.negativeHeadroomProb <= 1)) return `negativeHeadroomProb must be in [0, 1], got ${p.negativeHeadroomProb}`;
  if (!["most", "least", "best"].includes(p.headroomStrategy)) return `headroomStrategy must be most, least or best, got ${p.headroomStrategy}`;
  if (!["never", "threshold", "compete"].includes(p.localPrefill)) return `localPrefill must be never, threshold or compete, got ${p.localPrefill}`;
  if (!(p.pdThreshold >= 0 && Number.isFinite(p.pdThreshold))) return `pdThreshold must be >= 0, got ${p.pdThreshold}`;
  if (!Number.isInteger(p.fallbacks) || p.fallbacks < 0 || p.fallbacks > MAX_FALLBACKS) return `fallbacks must be an integer in [0, ${MAX_FALLBACKS}], got ${p.fallbacks}`;
  if (!(topology.kvBytesPerToken >= 0 && Number.isFinite(topology.kvBytesPerToken))) return `kvBytesPerToken must be >= 0, got ${topology.kvBytesPerToken}`;
  for (const k of ["node", "rack", "cross"] as const) {
    const bw = topology.bandwidthGBps[k];
    if (!(bw > 0 && Number.isFinite(bw))) return `bandwidthGBps.${k} must be > 0, got ${bw}`;
  }
  return null;
}
