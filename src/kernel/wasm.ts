// Loads the WebAssembly kernel and hides its memory layout: snapshots, parameters and requests go in
// through typed-array views on the module's memory, results come back as plain objects. The views are
// rebuilt whenever memory has grown (growth detaches the old buffer).

import { existsSync, readFileSync } from "node:fs";
import { BatchTooLargeError, HeadroomError, RequestError, SnapshotError, SnapshotVersionError } from "../errors.js";
import { shippedFile } from "../paths.js";
import { denseLinks } from "./links.js";
import type { OptimizerParams, Outcome, PickRequest, PickResult, PoolSnapshot, TopologyParams } from "./types.js";
import { OUTCOMES } from "./types.js";
import { MAX_GRID_POINTS, paramsProblem, validateLoads, validateSnapshot } from "./validate.js";

const REQ_STRIDE = 8;
const RES_STRIDE = 24;
const REQ_HAS_TTFT = 1;
const REQ_HAS_TPOT = 2;
const REQ_NO_FALLBACKS = 4;

const ERRORS: Record<number, string> = {
  1: "kernel not configured",
  2: "pool larger than the kernel's capacity",
  3: "grid malformed or larger than the kernel's capacity",
  4: "snapshot holds a negative or non-finite value",
  5: "snapshot version mismatch",
  6: "batch larger than the kernel's capacity",
  7: "no snapshot loaded",
};

const STRATEGIES = { most: 0, least: 1, best: 2 } as const;
const LOCAL_MODES = { never: 0, threshold: 1, compete: 2 } as const;

interface Exports {
  memory: WebAssembly.Memory;
  configure(maxPods: number, maxGrid: number, batchCap: number): number;
  setParams(): number;
  loadSnapshot(n: number, g: number, version: number, racks: number, nodes: number, links: number): number;
  pickBatch(count: number, expectedVersion: number): number;
  keepBatchLoads(): void;
  uncutPickCount(): number;
}

export interface KernelCapacity {
  maxPods: number;
  maxGrid: number;
  batchCapacity: number;
}

let compiled: WebAssembly.Module | null = null;

/** The release build of assembly/index.ts, found from this file in src/ or in dist/src/. */
export function kernelModule(): WebAssembly.Module {
  if (compiled) return compiled;
  const path = shippedFile("build", "release.wasm");
  if (!existsSync(path)) throw new HeadroomError("KERNEL_UNAVAILABLE", `kernel not built: ${path} is missing (run npm run build)`);
  compiled = new WebAssembly.Module(readFileSync(path));
  return compiled;
}

export class WasmKernel {
  private readonly exports: Exports;
  private capacity: KernelCapacity;
  private buffer: ArrayBuffer | null = null;
  private info = 0;
  private f64!: Float64Array;
  private i32!: Int32Array;
  private regions!: Int32Array;
  /** Whole request and result regions, kept between picks. */
  private reqView!: Float64Array;
  private resView!: Float64Array;
  /** The in-flight load regions, whole: updateLoads runs before most picks and makes no views. */
  private loadViews!: [Float64Array, Float64Array, Float64Array];
  private version = -1;
  private loadedPods = 0;

  /** `module`: another build of the kernel, for benchmarks that compare two builds in one process. */
  constructor(params: OptimizerParams, topology: TopologyParams, capacity: Partial<KernelCapacity> = {}, module: WebAssembly.Module = kernelModule()) {
    const instance = new WebAssembly.Instance(module, {});
    this.exports = instance.exports as unknown as Exports;
    this.capacity = { maxPods: 1024, maxGrid: 16, batchCapacity: 256, ...capacity };
    this.configure();
    this.setParams(params, topology);
  }

  get batchCapacity(): number {
    return this.capacity.batchCapacity;
  }

  /** Picks whose groups needed no sorted lists, the SLO line cutting none (assembly/index.ts, uncutGroups). */
  get uncutPicks(): number {
    return this.exports.uncutPickCount();
  }

  private configure(): void {
    const { maxPods, maxGrid, batchCapacity } = this.capacity;
    this.info = this.exports.configure(maxPods, maxGrid, batchCapacity);
    if (this.info === 0) throw new HeadroomError("KERNEL_UNAVAILABLE", `kernel could not lay out ${maxPods} pods`);
    this.buffer = null;
    this.views();
  }

  /** Views on the module's memory, rebuilt when growth has replaced its buffer. */
  private views(): void {
    const buf = this.exports.memory.buffer;
    if (buf === this.buffer) return;
    this.buffer = buf;
    this.f64 = new Float64Array(buf);
    this.i32 = new Int32Array(buf);
    this.regions = this.i32.subarray(this.info >> 2, (this.info >> 2) + 19);
    this.reqView = this.f64At(15, this.capacity.batchCapacity * REQ_STRIDE);
    this.resView = this.f64At(16, this.capacity.batchCapacity * RES_STRIDE);
    const maxPods = this.capacity.maxPods;
    this.loadViews = [this.f64At(8, maxPods), this.f64At(9, maxPods), this.f64At(10, maxPods)];
  }

  private f64At(region: number, length: number): Float64Array {
    return this.f64.subarray(this.regions[region] >> 3, (this.regions[region] >> 3) + length);
  }

  private i32At(region: number, length: number): Int32Array {
    return this.i32.subarray(this.regions[region] >> 2, (this.regions[region] >> 2) + length);
  }

  setParams(params: OptimizerParams, topology: TopologyParams): void {
    const problem = paramsProblem(params, topology);
    if (problem) throw new RequestError(problem);
    this.views();
    this.f64At(14, 14).set([
      params.ttftWeight,
      params.tpotWeight,
      params.transferOverheadMs,
      params.sloBufferFactor,
      params.negativeHeadroomProb,
      STRATEGIES[params.headroomStrategy],
      LOCAL_MODES[params.localPrefill],
      params.pdThreshold,
      params.fallbacks,
      params.shedSheddable ? 1 : 0,
      topology.kvBytesPerToken,
      topology.bandwidthGBps.node,
      topology.bandwidthGBps.rack,
      topology.bandwidthGBps.cross,
    ]);
    this.check(this.exports.setParams());
  }

  loadSnapshot(snap: PoolSnapshot): void {
    validateSnapshot(snap);
    const n = snap.pods;
    const g = snap.gridTokens.length;
    if (n > this.capacity.maxPods || g > this.capacity.maxGrid) {
      this.capacity = {
        ...this.capacity,
        maxPods: Math.max(this.capacity.maxPods, 2 ** Math.ceil(Math.log2(Math.max(n, 1)))),
        maxGrid: Math.min(Math.max(this.capacity.maxGrid, g), MAX_GRID_POINTS),
      };
      this.configure();
    }
    this.views();
    const links = denseLinks(snap);
    this.f64At(0, g).set(snap.gridTokens);
    const roles = this.i32At(1, n);
    for (let i = 0; i < n; i++) roles[i] = snap.roles[i];
    this.i32At(2, n).set(links.rackOf);
    this.i32At(3, n).set(links.nodeOf);
    this.f64At(4, g * n).set(snap.prefillMs);
    this.f64At(17, g * n).set(snap.prefillLoadMs);
    this.f64At(5, g * n).set(snap.localPrefillMs);
    this.f64At(6, g * n).set(snap.decodeWaitMs);
    this.f64At(7, g * n).set(snap.tpotMs);
    this.f64At(8, n).set(snap.prefillQueueMs);
    this.f64At(9, n).set(snap.decodeQueueMs);
    this.f64At(10, n).set(snap.tpotLoadMs);
    this.f64At(11, n).set(snap.waitPerRequestMs);
    this.f64At(12, n).set(snap.tpotPerRequestMs);
    this.f64At(13, n).set(snap.tpotPerTokenMs);
    // A loop, not Math.max(...ids): spreading tens of thousands of values can overflow the stack.
    const racks = n === 0 ? 0 : links.rackOf.reduce((a, b) => Math.max(a, b), 0) + 1;
    const nodes = n === 0 ? 0 : links.nodeOf.reduce((a, b) => Math.max(a, b), 0) + 1;
    this.version = -1;
    this.check(this.exports.loadSnapshot(n, g, snap.version, racks, nodes, links.hasLinks ? 1 : 0));
    this.version = snap.version;
    this.loadedPods = n;
  }

  /**
   * Replaces only the in-flight loads of the snapshot already loaded (same version and pods): what
   * changes between publications, so a kernel need not copy and check the curves again.
   */
  updateLoads(snap: PoolSnapshot): void {
    if (this.version < 0 || snap.version !== this.version || snap.pods !== this.loadedPods) {
      throw new SnapshotVersionError(this.version, snap.version);
    }
    validateLoads(snap);
    this.views();
    const [prefillQueueMs, decodeQueueMs, tpotLoadMs] = this.loadViews;
    prefillQueueMs.set(snap.prefillQueueMs);
    decodeQueueMs.set(snap.decodeQueueMs);
    tpotLoadMs.set(snap.tpotLoadMs);
  }

  /**
   * The loads the last batch ended with (its picks' included) become the loads the next batch starts
   * from, until updateLoads or loadSnapshot replaces them. For a worker: batches of one pool that reach
   * it before the main thread publishes the earlier ones' loads then still see them.
   */
  keepBatchLoads(): void {
    this.exports.keepBatchLoads();
  }

  /** Picks for a batch in order; each pick's load is seen by the picks after it. */
  pick(requests: PickRequest[], expectedVersion?: number): PickResult[] {
    this.run(requests, expectedVersion);
    return readResults(this.resView, requests.length);
  }

  /**
   * pick() with the results left as the kernel wrote them, RES_STRIDE numbers a pick (a copy): what a
   * worker thread sends back, a transferable buffer instead of objects to clone. readResults() reads them.
   */
  pickRows(requests: PickRequest[], expectedVersion?: number): Float64Array {
    this.run(requests, expectedVersion);
    return this.resView.slice(0, requests.length * RES_STRIDE);
  }

  private run(requests: PickRequest[], expectedVersion: number | undefined): void {
    const count = requests.length;
    if (count > this.capacity.batchCapacity) throw new BatchTooLargeError(count, this.capacity.batchCapacity);
    if (this.version < 0) throw new RequestError("no snapshot loaded");
    if (expectedVersion !== undefined && expectedVersion !== this.version) throw new SnapshotVersionError(this.version, expectedVersion);
    this.views();
    const req = this.reqView;
    for (let i = 0; i < count; i++) {
      const r = requests[i];
      const at = i * REQ_STRIDE;
      // Typed arrays coerce ("300" becomes 300); the kernel must see a non-number as invalid.
      req[at] = num(r.inputTokens);
      req[at + 1] = num(r.outputTokens);
      req[at + 2] = num(r.prefixHit);
      req[at + 3] = r.sloTtftMs === undefined ? 0 : num(r.sloTtftMs);
      req[at + 4] = r.sloTpotMs === undefined ? 0 : num(r.sloTpotMs);
      req[at + 5] = num(r.priority);
      req[at + 6] = num(r.seed);
      req[at + 7] =
        (r.sloTtftMs !== undefined ? REQ_HAS_TTFT : 0) | (r.sloTpotMs !== undefined ? REQ_HAS_TPOT : 0) | (r.fallbacks === false ? REQ_NO_FALLBACKS : 0);
    }
    this.check(this.exports.pickBatch(count, expectedVersion ?? -1));
  }

  private check(code: number): void {
    if (code === 0) return;
    if (code === 4 || code === 3) throw new SnapshotError(ERRORS[code]);
    throw new HeadroomError(code === 2 ? "POOL_TOO_LARGE" : "KERNEL_UNAVAILABLE", ERRORS[code] ?? `kernel error ${code}`);
  }
}

function num(v: unknown): number {
  return typeof v === "number" ? v : NaN;
}

/** The first `count` results of rows the kernel wrote (its result view, or pickRows()'s copy). */
export function readResults(rows: Float64Array, count = rows.length / RES_STRIDE): PickResult[] {
  const out: PickResult[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = readResult(rows, i * RES_STRIDE);
  return out;
}

function readResult(res: Float64Array, at: number): PickResult {
  const fallbackCount = res[at + 15];
  const fallbacks: number[] = [];
  for (let s = 0; s < fallbackCount; s++) fallbacks.push(res[at + 16 + s]);
  return {
    outcome: OUTCOMES[res[at]] as Outcome,
    prefill: res[at + 1],
    decode: res[at + 2],
    decodeOnly: res[at + 3] === 1,
    fallbacks,
    prefillTtftMs: res[at + 4],
    decodeTtftMs: res[at + 5],
    transferMs: res[at + 6],
    ttftMs: res[at + 7],
    tpotMs: res[at + 8],
    headroomTtftMs: res[at + 9],
    headroomTpotMs: res[at + 10],
    blended: res[at + 11],
    pairs: res[at + 12],
    positivePairs: res[at + 13],
    version: res[at + 14],
  };
}
