// A pool's snapshot in a SharedArrayBuffer (SPEC.md §3): the main thread publishes, worker threads copy
// it into their kernels. A seqlock keeps readers from seeing a torn snapshot: the writer makes the
// sequence odd while it writes and even when done; a reader retries when the sequence was odd or moved.
// Between full publications the main thread adds in-flight load in place (`addLoad`), and readers
// that already hold the version copy only the three load arrays.

import { SnapshotError } from "../errors.js";
import type { PoolSnapshot } from "./types.js";
import { MAX_GRID_POINTS, MAX_PODS } from "./validate.js";

const SEQ = 0;
const VERSION = 1;
const PODS = 2;
const GRID = 3;
const LOAD_SEQ = 4;
const CAP_PODS = 5;
const CAP_GRID = 6;
/** Set on a buffer the writer replaced by a larger one. */
const RETIRED = 7;
/**
 * Which buffer this is, unique in the process. Every message carrying a SharedArrayBuffer arrives as a
 * new object over the same memory, so a worker can tell a buffer it already reads only by this.
 */
const BUFFER_ID = 8;
/** Even, so that the Float64Arrays after the header stay aligned. */
const HEADER_INTS = 10;

let lastBufferId = 0;

const CURVES = ["prefillMs", "prefillLoadMs", "localPrefillMs", "decodeWaitMs", "tpotMs"] as const;
const LOADS = ["prefillQueueMs", "decodeQueueMs", "tpotLoadMs"] as const;
const MARGINALS = ["waitPerRequestMs", "tpotPerRequestMs", "tpotPerTokenMs"] as const;

type CurveName = (typeof CURVES)[number];
type PerPodName = (typeof LOADS)[number] | (typeof MARGINALS)[number];

interface Views {
  header: Int32Array;
  grid: Float64Array;
  curves: Record<CurveName, Float64Array>;
  perPod: Record<PerPodName, Float64Array>;
  roles: Uint8Array;
  nodeIds: Int32Array;
  rackIds: Int32Array;
}

/** The published version: a 32-bit unsigned number the Int32 header holds (read signed, 2^31 and above came out negative). */
function versionIn(header: Int32Array): number {
  return Atomics.load(header, VERSION) >>> 0;
}

function byteLength(capPods: number, capGrid: number): number {
  const f64 = capGrid + CURVES.length * capPods * capGrid + (LOADS.length + MARGINALS.length) * capPods;
  return HEADER_INTS * 4 + f64 * 8 + 2 * capPods * 4 + capPods;
}

function views(buffer: SharedArrayBuffer, capPods: number, capGrid: number): Views {
  let at = 0;
  const take = <T>(make: (offset: number) => T, bytes: number): T => {
    const view = make(at);
    at += bytes;
    return view;
  };
  const header = take((o) => new Int32Array(buffer, o, HEADER_INTS), HEADER_INTS * 4);
  const f64 = (len: number) => take((o) => new Float64Array(buffer, o, len), len * 8);
  const grid = f64(capGrid);
  const curves = Object.fromEntries(CURVES.map((name) => [name, f64(capPods * capGrid)])) as Record<CurveName, Float64Array>;
  const perPod = Object.fromEntries([...LOADS, ...MARGINALS].map((name) => [name, f64(capPods)])) as Record<PerPodName, Float64Array>;
  const nodeIds = take((o) => new Int32Array(buffer, o, capPods), capPods * 4);
  const rackIds = take((o) => new Int32Array(buffer, o, capPods), capPods * 4);
  const roles = take((o) => new Uint8Array(buffer, o, capPods), capPods);
  return { header, grid, curves, perPod, roles, nodeIds, rackIds };
}

/** The writer's side; one per pool, on the main thread. */
export class SharedSnapshotWriter {
  private buffer: SharedArrayBuffer;
  private v: Views;
  private capPods: number;
  private capGrid: number;

  constructor(capPods = 64, capGrid = 16) {
    this.capPods = capPods;
    this.capGrid = capGrid;
    this.buffer = new SharedArrayBuffer(byteLength(capPods, capGrid));
    this.v = views(this.buffer, capPods, capGrid);
    this.v.header[CAP_PODS] = capPods;
    this.v.header[CAP_GRID] = capGrid;
    this.v.header[BUFFER_ID] = ++lastBufferId;
  }

  /** The buffer readers attach to; it changes when a snapshot outgrows it (readers compare and re-attach). */
  get shared(): SharedArrayBuffer {
    return this.buffer;
  }

  get version(): number {
    return versionIn(this.v.header);
  }

  /** Writes a complete snapshot (already validated by its builder). */
  publish(snap: PoolSnapshot): void {
    const n = snap.pods;
    const g = snap.gridTokens.length;
    if (n > MAX_PODS || g > MAX_GRID_POINTS) throw new SnapshotError(`snapshot of ${n} pods and ${g} grid points exceeds the kernel's limits`);
    // Pods double when they outgrow the buffer; a longer grid alone leaves their capacity as it is.
    if (n > this.capPods || g > this.capGrid) this.grow(n > this.capPods ? Math.max(n, this.capPods * 2) : this.capPods, Math.max(g, this.capGrid));
    const v = this.v;
    const h = v.header;
    Atomics.add(h, SEQ, 1);
    h[PODS] = n;
    h[GRID] = g;
    v.grid.set(snap.gridTokens);
    for (const name of CURVES) v.curves[name].set(snap[name].subarray(0, n * g));
    for (const name of [...LOADS, ...MARGINALS]) v.perPod[name].set(snap[name].subarray(0, n));
    v.roles.set(snap.roles.subarray(0, n));
    v.nodeIds.set(snap.nodeIds.subarray(0, n));
    v.rackIds.set(snap.rackIds.subarray(0, n));
    Atomics.store(h, VERSION, snap.version);
    Atomics.add(h, LOAD_SEQ, 1);
    Atomics.add(h, SEQ, 1);
  }

  /** Adds one pick's load to pod i between publications (SPEC.md §2, in-flight accounting). */
  addLoad(i: number, prefillQueueMs: number, decodeQueueMs: number, tpotLoadMs: number): void {
    const h = this.v.header;
    if (!(i >= 0 && i < h[PODS])) throw new RangeError(`pod index ${i} outside the snapshot of ${h[PODS]} pods`);
    Atomics.add(h, SEQ, 1);
    this.v.perPod.prefillQueueMs[i] += prefillQueueMs;
    this.v.perPod.decodeQueueMs[i] += decodeQueueMs;
    this.v.perPod.tpotLoadMs[i] += tpotLoadMs;
    Atomics.add(h, LOAD_SEQ, 1);
    Atomics.add(h, SEQ, 1);
  }

  private grow(capPods: number, capGrid: number): void {
    const next = new SharedArrayBuffer(byteLength(capPods, capGrid));
    const nv = views(next, capPods, capGrid);
    nv.header[VERSION] = this.v.header[VERSION];
    nv.header[LOAD_SEQ] = this.v.header[LOAD_SEQ];
    nv.header[CAP_PODS] = capPods;
    nv.header[CAP_GRID] = capGrid;
    nv.header[BUFFER_ID] = ++lastBufferId;
    Atomics.store(this.v.header, RETIRED, 1);
    this.buffer = next;
    this.v = nv;
    this.capPods = capPods;
    this.capGrid = capGrid;
  }
}

/** Thrown by a reader whose buffer the writer has replaced; attach to the writer's new buffer. */
export class RetiredSnapshotError extends Error {
  constructor() {
    super("this snapshot buffer was replaced by a larger one");
    this.name = "RetiredSnapshotError";
  }
}

/** A reader's side, in any thread: copies a consistent snapshot out of the shared buffer. */
export class SharedSnapshotReader {
  private readonly v: Views;
  private heldVersion = -1;
  private heldLoadSeq = -1;
  /** The reader's own copy, with arrays sized to the buffer's capacity. */
  private readonly snap: PoolSnapshot;

  constructor(buffer: SharedArrayBuffer) {
    const header = new Int32Array(buffer, 0, HEADER_INTS);
    const capPods = header[CAP_PODS];
    const capGrid = header[CAP_GRID];
    this.v = views(buffer, capPods, capGrid);
    const f = (len: number) => new Float64Array(len);
    this.snap = {
      version: -1,
      pods: 0,
      gridTokens: f(0),
      roles: new Uint8Array(capPods),
      nodeIds: new Int32Array(capPods),
      rackIds: new Int32Array(capPods),
      prefillMs: f(capPods * capGrid),
      prefillLoadMs: f(capPods * capGrid),
      localPrefillMs: f(capPods * capGrid),
      decodeWaitMs: f(capPods * capGrid),
      tpotMs: f(capPods * capGrid),
      prefillQueueMs: f(capPods),
      decodeQueueMs: f(capPods),
      tpotLoadMs: f(capPods),
      waitPerRequestMs: f(capPods),
      tpotPerRequestMs: f(capPods),
      tpotPerTokenMs: f(capPods),
    };
  }

  /** True when `buffer` is the memory this reader copies from, whichever message brought it. */
  reads(buffer: SharedArrayBuffer): boolean {
    return buffer.byteLength >= HEADER_INTS * 4 && new Int32Array(buffer, 0, HEADER_INTS)[BUFFER_ID] === this.v.header[BUFFER_ID];
  }

  /** Version currently published (without copying). */
  publishedVersion(): number {
    return versionIn(this.v.header);
  }

  /**
   * Brings the private copy up to date and returns it with `changed`: "none", "loads" (only the
   * in-flight arrays moved) or "all" (a new version). The returned arrays are views of exactly
   * `pods` (and `pods x grid`) elements, valid until the next call.
   */
  read(): { snapshot: PoolSnapshot; changed: "none" | "loads" | "all" } {
    const h = this.v.header;
    for (;;) {
      if (Atomics.load(h, RETIRED) !== 0) throw new RetiredSnapshotError();
      const seq = Atomics.load(h, SEQ);
      if (seq & 1) continue;
      // Unsigned, it never equals the -1 a new reader holds.
      const version = versionIn(h);
      const loadSeq = Atomics.load(h, LOAD_SEQ);
      let changed: "none" | "loads" | "all" = "none";
      if (version !== this.heldVersion) {
        this.copyAll();
        changed = "all";
      } else if (loadSeq !== this.heldLoadSeq) {
        this.copyLoads();
        changed = "loads";
      }
      if (Atomics.load(h, SEQ) !== seq) continue;
      if (changed !== "none") {
        this.heldVersion = version;
        this.heldLoadSeq = loadSeq;
        this.snap.version = version;
      }
      return { snapshot: this.view(), changed };
    }
  }

  private copyAll(): void {
    const v = this.v;
    const n = v.header[PODS];
    const g = v.header[GRID];
    this.snap.pods = n;
    this.snap.gridTokens = Float64Array.from(v.grid.subarray(0, g));
    for (const name of CURVES) this.snap[name].set(v.curves[name].subarray(0, n * g));
    for (const name of MARGINALS) this.snap[name].set(v.perPod[name].subarray(0, n));
    this.snap.roles.set(v.roles.subarray(0, n));
    this.snap.nodeIds.set(v.nodeIds.subarray(0, n));
    this.snap.rackIds.set(v.rackIds.subarray(0, n));
    this.copyLoads();
  }

  private copyLoads(): void {
    const n = this.snap.pods;
    for (const name of LOADS) this.snap[name].set(this.v.perPod[name].subarray(0, n));
  }

  private view(): PoolSnapshot {
    const s = this.snap;
    const n = s.pods;
    const ng = n * s.gridTokens.length;
    return {
      version: s.version,
      pods: n,
      gridTokens: s.gridTokens,
      roles: s.roles.subarray(0, n),
      nodeIds: s.nodeIds.subarray(0, n),
      rackIds: s.rackIds.subarray(0, n),
      prefillMs: s.prefillMs.subarray(0, ng),
      prefillLoadMs: s.prefillLoadMs.subarray(0, ng),
      localPrefillMs: s.localPrefillMs.subarray(0, ng),
      decodeWaitMs: s.decodeWaitMs.subarray(0, ng),
      tpotMs: s.tpotMs.subarray(0, ng),
      prefillQueueMs: s.prefillQueueMs.subarray(0, n),
      decodeQueueMs: s.decodeQueueMs.subarray(0, n),
      tpotLoadMs: s.tpotLoadMs.subarray(0, n),
      waitPerRequestMs: s.waitPerRequestMs.subarray(0, n),
      tpotPerRequestMs: s.tpotPerRequestMs.subarray(0, n),
      tpotPerTokenMs: s.tpotPerTokenMs.subarray(0, n),
    };
  }
}
