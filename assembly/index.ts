// The pair-selection kernel (SPEC.md §2, §3): one call picks for a batch of requests against the pool
// snapshot held in linear memory. Plain exported functions over fixed regions; JS writes inputs and
// reads results through typed-array views on this module's memory (src/kernel/wasm.ts). No allocation
// after configure(). Every floating-point expression keeps the operand order of the TypeScript twin
// (src/kernel/twin.ts), which documents the algorithm; change both together.

// ---- layout -------------------------------------------------------------------------------------

const REQ_STRIDE: i32 = 8; // inputTokens, outputTokens, prefixHit, sloTtftMs, sloTpotMs, priority, seed, flags
const RES_STRIDE: i32 = 24; // see RES_* below, then MAX_FALLBACKS fallback slots
const MAX_FALLBACKS: i32 = 8;
const PARAM_COUNT: i32 = 16;

const REQ_HAS_TTFT: i32 = 1;
const REQ_HAS_TPOT: i32 = 2;
/** The request wants no fallbacks (a stream pick: its compact answer names none). */
const REQ_NO_FALLBACKS: i32 = 4;

const RES_OUTCOME: i32 = 0;
const RES_PREFILL: i32 = 1;
const RES_DECODE: i32 = 2;
const RES_DECODE_ONLY: i32 = 3;
const RES_PREFILL_TTFT: i32 = 4;
const RES_DECODE_TTFT: i32 = 5;
const RES_TRANSFER: i32 = 6;
const RES_TTFT: i32 = 7;
const RES_TPOT: i32 = 8;
const RES_H_TTFT: i32 = 9;
const RES_H_TPOT: i32 = 10;
const RES_BLENDED: i32 = 11;
const RES_PAIRS: i32 = 12;
const RES_POSITIVE: i32 = 13;
const RES_VERSION: i32 = 14;
const RES_FALLBACK_COUNT: i32 = 15;
const RES_FALLBACKS: i32 = 16;

const OUT_POSITIVE: i32 = 0;
const OUT_NEGATIVE: i32 = 1;
const OUT_EXPLORE: i32 = 2;
const OUT_NO_SLO: i32 = 3;
const OUT_SHED: i32 = 4;
const OUT_NO_CANDIDATES: i32 = 5;
const OUT_INVALID: i32 = 6;

const ROLE_PREFILL: i32 = 1;
const ROLE_DECODE: i32 = 2;
const ROLE_ELIGIBLE: i32 = 4;

const CLASS_NODE: i32 = 0;
const CLASS_RACK: i32 = 1;
const CLASS_CROSS: i32 = 2;
const CLASS_LOCAL: i32 = 3;

const STRATEGY_MOST: i32 = 0;
const STRATEGY_LEAST: i32 = 1;

const LOCAL_COMPETE: i32 = 2;
const LOCAL_THRESHOLD: i32 = 1;

const DRAW_MOST: i32 = 0;
const DRAW_LEAST: i32 = 1;
const DRAW_NEGATIVE: i32 = 2;
const DRAW_EXPLORE: i32 = 3;

const ERR_NONE: i32 = 0;
const ERR_NOT_CONFIGURED: i32 = 1;
const ERR_TOO_MANY_PODS: i32 = 2;
const ERR_GRID: i32 = 3;
const ERR_VALUE: i32 = 4;
const ERR_VERSION: i32 = 5;
const ERR_BATCH: i32 = 6;
const ERR_NO_SNAPSHOT: i32 = 7;

const MAX_TOKENS: f64 = 10000000.0;
const MAX_SLO_MS: f64 = 1000000000.0;

// Region addresses, published to JS through the info table.
let INFO: usize = 0;
let GRID: usize = 0;
let ROLES: usize = 0;
let RACK: usize = 0;
let NODE: usize = 0;
let PF: usize = 0;
let PLF: usize = 0;
let LPF: usize = 0;
let DW: usize = 0;
let TP: usize = 0;
let PQ: usize = 0;
let DQ: usize = 0;
let TL: usize = 0;
let WPR: usize = 0;
let TPR: usize = 0;
let TPT: usize = 0;
let PARAMS: usize = 0;
let REQ: usize = 0;
let RES: usize = 0;
// Scratch.
let WPQ: usize = 0;
let WDQ: usize = 0;
let WTL: usize = 0;
let VA: usize = 0;
let VB: usize = 0;
let VT: usize = 0;
let VLC: usize = 0;
let VL: usize = 0;
let PLIST: usize = 0;
let DLIST: usize = 0;
let SORTA: usize = 0;
let SORTB: usize = 0;
let MSCR: usize = 0;
let SK: usize = 0;
let SK2: usize = 0;
let HIST: usize = 0;
let SPODS: usize = 0;
let SVALS: usize = 0;
let SGRP: usize = 0;
let SNX: usize = 0;
let SRS: usize = 0;
let SPRE: usize = 0;
let ROFF: usize = 0;
let RLEN: usize = 0;
let NOFF: usize = 0;
let NLEN: usize = 0;
let RINFO: usize = 0;
let NINFO: usize = 0;
let NSTAT: usize = 0;
let RSTAT: usize = 0;
let TSTAT: usize = 0;
let ACC: usize = 0;
let MW: usize = 0;
/** Per decode pod d at BQ + 32 d, per class k < 3: blended without the prefill term (th + tp), for draw. */
let BQ: usize = 0;
let GROUPS: usize = 0;
let NUNC: usize = 0;
let NPL: usize = 0;
let RPL: usize = 0;
let MIDS: usize = 0;
let FB_IDS: usize = 0;
let FB_KEYS: usize = 0;
let FB_PAIR: usize = 0;

let capPods: i32 = 0;
let capGrid: i32 = 0;
let capBatch: i32 = 0;

// Snapshot state.
let loaded: bool = false;
let nPods: i32 = 0;
let nGrid: i32 = 0;
let version: u32 = 0;
let nPrefill: i32 = 0;
let nDecode: i32 = 0;
let nBoth: i32 = 0;
/** The pod index ranges that hold every candidate prefill pod, and every candidate decode pod. */
let pFrom: i32 = 0;
let pTo: i32 = 0;
let dFrom: i32 = 0;
let dTo: i32 = 0;
let nRacks: i32 = 0;
let nNodes: i32 = 0;
let hasLinks: bool = false;

// Parameters.
let wT: f64 = 0.8;
let wP: f64 = 0.2;
let overheadMs: f64 = 5.0;
let bufferFactor: f64 = 0.9;
let exploreProb: f64 = 0.01;
let strategy: i32 = 0;
let localMode: i32 = 1;
let pdThreshold: f64 = 256.0;
let fallbackCount: i32 = 2;
let shedSheddable: bool = true;
let kvBytesPerToken: f64 = 0.0;
let bwNode: f64 = 450.0;
let bwRack: f64 = 50.0;
let bwCross: f64 = 12.5;

// Per-request state.
let topo: bool = false;
let hasT: bool = false;
let hasP: bool = false;
let budgetT: f64 = 0;
let budgetP: f64 = 0;
let reqIsl: f64 = 0;
let reqOsl: f64 = 0;
let uncached: f64 = 0;
let cNode: f64 = 0;
let cRack: f64 = 0;
let cCross: f64 = 0;
let rng: u32 = 0;
let chosenP: i32 = -1;
let chosenD: i32 = -1;
let chosenK: i32 = 0;
/** Whether local pairs are candidates for the request. */
let localNow: bool = false;
/** Picks whose groups came from uncutGroups, since configure(). */
let uncutPicks: u32 = 0;

// ---- memory helpers -----------------------------------------------------------------------------

@inline function ldf(base: usize, i: i32): f64 {
  return load<f64>(base + (<usize>i << 3));
}
@inline function stf(base: usize, i: i32, v: f64): void {
  store<f64>(base + (<usize>i << 3), v);
}
@inline function ldi(base: usize, i: i32): i32 {
  return load<i32>(base + (<usize>i << 2));
}
@inline function sti(base: usize, i: i32, v: i32): void {
  store<i32>(base + (<usize>i << 2), v);
}

let bump: usize = 0;
function take(bytes: i32): usize {
  const at = (bump + 15) & ~(<usize>15);
  bump = at + <usize>bytes;
  return at;
}

/**
 * Lays out every region for pools of up to maxPods pods, grids of up to maxGrid points and batches of
 * up to batchCap requests, growing memory as needed. Returns the address of the info table.
 */
export function configure(maxPods: i32, maxGrid: i32, batchCap: i32): usize {
  if (maxPods < 1 || maxGrid < 1 || batchCap < 1) return 0;
  bump = __heap_base;
  const n = maxPods;
  const f8 = n << 3;
  const i4 = n << 2;
  INFO = take(64 * 4);
  GRID = take(maxGrid << 3);
  ROLES = take(i4);
  RACK = take(i4);
  NODE = take(i4);
  PF = take(maxGrid * f8);
  PLF = take(maxGrid * f8);
  LPF = take(maxGrid * f8);
  DW = take(maxGrid * f8);
  TP = take(maxGrid * f8);
  PQ = take(f8);
  DQ = take(f8);
  TL = take(f8);
  WPR = take(f8);
  TPR = take(f8);
  TPT = take(f8);
  PARAMS = take(PARAM_COUNT << 3);
  REQ = take((batchCap * REQ_STRIDE) << 3);
  RES = take((batchCap * RES_STRIDE) << 3);
  WPQ = take(f8);
  WDQ = take(f8);
  WTL = take(f8);
  VA = take(f8 + 16);
  VB = take(f8 + 16);
  VT = take(f8 + 16);
  VLC = take(f8 + 16);
  VL = take(f8 + 16);
  PLIST = take(i4);
  DLIST = take(i4);
  SORTA = take(i4);
  SORTB = take(i4);
  MSCR = take(i4);
  SK = take(f8);
  SK2 = take(f8);
  HIST = take(max<i32>(8 * 256 * 4, 4 << (33 - clz<i32>(max<i32>(maxPods - 1, 1)))));
  SPODS = take(3 * i4);
  SVALS = take(3 * f8);
  SGRP = take(3 * i4);
  SNX = take(3 * i4);
  SRS = take(3 * i4);
  SPRE = take(5 * f8 + 32);
  ROFF = take(i4);
  RLEN = take(i4);
  NOFF = take(i4);
  NLEN = take(i4);
  RINFO = take(i4 << 3);
  NINFO = take(i4 << 3);
  NSTAT = take(n << 6);
  RSTAT = take(n << 6);
  TSTAT = take(64);
  ACC = take(4 * f8);
  MW = take(f8);
  BQ = take(n << 5);
  GROUPS = take(3 * 32 * n);
  NUNC = take(n << 7);
  NPL = take(i4);
  RPL = take(i4);
  MIDS = take(i4);
  FB_IDS = take(MAX_FALLBACKS << 2);
  FB_KEYS = take(MAX_FALLBACKS << 3);
  FB_PAIR = take(f8);
  const end = bump;
  const have = <usize>memory.size() << 16;
  if (end > have) {
    const pages = <i32>((end - have + 0xffff) >> 16);
    if (memory.grow(pages) < 0) return 0;
  }
  capPods = maxPods;
  capGrid = maxGrid;
  capBatch = batchCap;
  loaded = false;
  uncutPicks = 0;
  sti(INFO, 0, <i32>GRID);
  sti(INFO, 1, <i32>ROLES);
  sti(INFO, 2, <i32>RACK);
  sti(INFO, 3, <i32>NODE);
  sti(INFO, 4, <i32>PF);
  sti(INFO, 5, <i32>LPF);
  sti(INFO, 6, <i32>DW);
  sti(INFO, 7, <i32>TP);
  sti(INFO, 8, <i32>PQ);
  sti(INFO, 9, <i32>DQ);
  sti(INFO, 10, <i32>TL);
  sti(INFO, 11, <i32>WPR);
  sti(INFO, 12, <i32>TPR);
  sti(INFO, 13, <i32>TPT);
  sti(INFO, 14, <i32>PARAMS);
  sti(INFO, 15, <i32>REQ);
  sti(INFO, 16, <i32>RES);
  sti(INFO, 17, <i32>PLF);
  sti(INFO, 18, <i32>end);
  return INFO;
}

/** How many picks took uncutGroups's way (tests check that both ways are exercised). */
export function uncutPickCount(): u32 {
  return uncutPicks;
}

// ---- parameters and snapshot --------------------------------------------------------------------

/** Reads PARAMS: wT, wP, overhead, buffer, exploreProb, strategy, localMode, pdThreshold, fallbacks, shed, kvBytes, bw node, rack, cross. */
export function setParams(): i32 {
  if (capPods == 0) return ERR_NOT_CONFIGURED;
  wT = ldf(PARAMS, 0);
  wP = ldf(PARAMS, 1);
  overheadMs = ldf(PARAMS, 2);
  bufferFactor = ldf(PARAMS, 3);
  exploreProb = ldf(PARAMS, 4);
  strategy = <i32>ldf(PARAMS, 5);
  localMode = <i32>ldf(PARAMS, 6);
  pdThreshold = ldf(PARAMS, 7);
  fallbackCount = min<i32>(max<i32>(<i32>ldf(PARAMS, 8), 0), MAX_FALLBACKS);
  shedSheddable = ldf(PARAMS, 9) != 0;
  kvBytesPerToken = ldf(PARAMS, 10);
  bwNode = ldf(PARAMS, 11);
  bwRack = ldf(PARAMS, 12);
  bwCross = ldf(PARAMS, 13);
  return ERR_NONE;
}

function finiteNonNegative(base: usize, count: i32): bool {
  for (let i = 0; i < count; i++) {
    const v = ldf(base, i);
    if (!(v >= 0.0 && v < Infinity)) return false;
  }
  return true;
}

/**
 * Takes the snapshot JS wrote into the snapshot regions: n pods, g grid points, dense rack and node ids
 * (racks < nr, nodes < nn). Checks every value and prepares the per-snapshot lists.
 */
export function loadSnapshot(n: i32, g: i32, ver: u32, nr: i32, nn: i32, links: i32): i32 {
  loaded = false;
  if (capPods == 0) return ERR_NOT_CONFIGURED;
  if (n < 0 || n > capPods || nr > capPods || nn > capPods) return ERR_TOO_MANY_PODS;
  if (g < 1 || g > capGrid) return ERR_GRID;
  for (let j = 0; j < g; j++) {
    const x = ldf(GRID, j);
    if (!(x >= 0.0 && x < Infinity)) return ERR_GRID;
    if (j > 0 && !(x > ldf(GRID, j - 1))) return ERR_GRID;
  }
  const gn = g * n;
  if (!finiteNonNegative(PF, gn) || !finiteNonNegative(PLF, gn) || !finiteNonNegative(LPF, gn) || !finiteNonNegative(DW, gn) || !finiteNonNegative(TP, gn)) return ERR_VALUE;
  if (!finiteNonNegative(PQ, n) || !finiteNonNegative(DQ, n) || !finiteNonNegative(TL, n)) return ERR_VALUE;
  if (!finiteNonNegative(WPR, n) || !finiteNonNegative(TPR, n) || !finiteNonNegative(TPT, n)) return ERR_VALUE;
  for (let i = 0; i < n; i++) {
    const r = ldi(RACK, i);
    const nd = ldi(NODE, i);
    if (r < 0 || r >= nr || nd < 0 || nd >= nn) return ERR_VALUE;
  }
  nPods = n;
  nGrid = g;
  version = ver;
  nRacks = nr;
  nNodes = nn;
  hasLinks = links != 0;
  nPrefill = 0;
  nDecode = 0;
  nBoth = 0;
  for (let r = 0; r < nr; r++) {
    sti(RLEN, r, 0);
  }
  for (let nd = 0; nd < nn; nd++) {
    sti(NLEN, nd, 0);
  }
  for (let i = 0; i < n; i++) {
    const role = ldi(ROLES, i);
    if ((role & ROLE_ELIGIBLE) == 0) continue;
    const r = ldi(RACK, i);
    const nd = ldi(NODE, i);
    if ((role & ROLE_PREFILL) != 0) {
      sti(PLIST, nPrefill, i);
      sti(SORTA, nPrefill, i);
      nPrefill++;
      sti(RLEN, r, ldi(RLEN, r) + 1);
      sti(NLEN, nd, ldi(NLEN, nd) + 1);
    }
    if ((role & ROLE_DECODE) != 0) {
      sti(DLIST, nDecode, i);
      sti(SORTB, nDecode, i);
      nDecode++;
    }
    if ((role & ROLE_PREFILL) != 0 && (role & ROLE_DECODE) != 0) nBoth++;
  }
  pFrom = nPrefill > 0 ? ldi(PLIST, 0) : 0;
  pTo = nPrefill > 0 ? ldi(PLIST, nPrefill - 1) + 1 : 0;
  dFrom = nDecode > 0 ? ldi(DLIST, 0) : 0;
  dTo = nDecode > 0 ? ldi(DLIST, nDecode - 1) + 1 : 0;
  let acc = 0;
  for (let r = 0; r < nr; r++) {
    sti(ROFF, r, acc);
    acc += ldi(RLEN, r);
  }
  acc = 0;
  for (let nd = 0; nd < nn; nd++) {
    sti(NOFF, nd, acc);
    acc += ldi(NLEN, nd);
  }
  // List bases in the unified list arrays: level 0 (all prefill pods) at 0, level 1 (per rack) from
  // capPods, level 2 (per node) from 2 capPods; prefix sums, one slot longer per list, at 0, capPods + 1
  // and 3 capPods + 1.
  for (let r = 0; r < nr; r++) {
    const ri = rackInfo(r);
    store<i32>(ri, capPods + ldi(ROFF, r), INFO_BASE);
    store<i32>(ri, ldi(RLEN, r), INFO_LEN);
    store<i32>(ri, capPods + 1 + ldi(ROFF, r) + r, INFO_PRE);
  }
  for (let nd = 0; nd < nn; nd++) {
    const ni = nodeInfo(nd);
    store<i32>(ni, 2 * capPods + ldi(NOFF, nd), INFO_BASE);
    store<i32>(ni, ldi(NLEN, nd), INFO_LEN);
    store<i32>(ni, 3 * capPods + 1 + ldi(NOFF, nd) + nd, INFO_PRE);
  }
  for (let i = 0; i < n; i++) store<i32>(nodeInfo(ldi(NODE, i)), ldi(RACK, i), INFO_RACK);
  // The prefill pods of each node and of each rack in snapshot order, for the draw's member scan; the
  // fill counts, kept in ROFF and NOFF meanwhile, end at the next list's start and are put back.
  for (let j = 0; j < nPrefill; j++) {
    const p = ldi(PLIST, j);
    const r = ldi(RACK, p);
    const nd = ldi(NODE, p);
    const rAt = ldi(ROFF, r);
    sti(RPL, rAt, p);
    sti(ROFF, r, rAt + 1);
    const nAt = ldi(NOFF, nd);
    sti(NPL, nAt, p);
    sti(NOFF, nd, nAt + 1);
  }
  for (let r = 0; r < nr; r++) sti(ROFF, r, ldi(ROFF, r) - ldi(RLEN, r));
  for (let nd = 0; nd < nn; nd++) sti(NOFF, nd, ldi(NOFF, nd) - ldi(NLEN, nd));
  loaded = true;
  return ERR_NONE;
}

// ---- the batch ----------------------------------------------------------------------------------

/** Picks for `count` requests in REQ, writing RES. Fails as a whole on a wrong version or size. */
export function pickBatch(count: i32, expectedVersion: f64): i32 {
  if (capPods == 0) return ERR_NOT_CONFIGURED;
  if (!loaded) return ERR_NO_SNAPSHOT;
  if (count < 0 || count > capBatch) return ERR_BATCH;
  if (expectedVersion >= 0 && <u32>expectedVersion != version) return ERR_VERSION;
  memory.copy(WPQ, PQ, <usize>nPods << 3);
  memory.copy(WDQ, DQ, <usize>nPods << 3);
  memory.copy(WTL, TL, <usize>nPods << 3);
  topo = kvBytesPerToken > 0 && hasLinks;
  for (let r = 0; r < count; r++) pickOne(r);
  return ERR_NONE;
}

/**
 * Keeps the last batch's in-batch loads as the loads the next batch starts from (a worker whose next
 * batch arrives before the main thread has published this one's loads).
 */
export function keepBatchLoads(): void {
  memory.copy(PQ, WPQ, <usize>nPods << 3);
  memory.copy(DQ, WDQ, <usize>nPods << 3);
  memory.copy(TL, WTL, <usize>nPods << 3);
}

function clearResult(res: usize): void {
  for (let k = 0; k < RES_STRIDE; k++) stf(res, k, NaN);
  stf(res, RES_PREFILL, -1);
  stf(res, RES_DECODE, -1);
  stf(res, RES_DECODE_ONLY, 0);
  stf(res, RES_PAIRS, 0);
  stf(res, RES_POSITIVE, 0);
  stf(res, RES_FALLBACK_COUNT, 0);
  stf(res, RES_VERSION, <f64>version);
}

function pickOne(r: i32): void {
  const req = REQ + ((<usize>(r * REQ_STRIDE)) << 3);
  const res = RES + ((<usize>(r * RES_STRIDE)) << 3);
  clearResult(res);
  const isl = ldf(req, 0);
  const osl = ldf(req, 1);
  const hit = ldf(req, 2);
  const sloT = ldf(req, 3);
  const sloP = ldf(req, 4);
  const priority = ldf(req, 5);
  const seed = ldf(req, 6);
  const flags = <i32>ldf(req, 7);
  hasT = (flags & REQ_HAS_TTFT) != 0;
  hasP = (flags & REQ_HAS_TPOT) != 0;
  const valid =
    isl >= 0 && isl <= MAX_TOKENS && osl >= 0 && osl <= MAX_TOKENS && hit >= 0 && hit <= 1 &&
    (!hasT || (sloT > 0 && sloT <= MAX_SLO_MS)) && (!hasP || (sloP > 0 && sloP <= MAX_SLO_MS)) &&
    priority - priority == 0 && seed >= 0 && seed <= 4294967295.0 && Math.floor(seed) == seed;
  if (!valid) {
    stf(res, RES_OUTCOME, OUT_INVALID);
    return;
  }
  reqIsl = isl;
  reqOsl = osl;
  budgetT = hasT ? sloT * bufferFactor : 0;
  budgetP = hasP ? sloP * bufferFactor : 0;
  uncached = isl * (1 - hit);
  // Counts of pairs in f64: a pool at the pod limit has up to 2^32 of them.
  const remotePairs = <f64>nPrefill * <f64>nDecode - <f64>nBoth;
  const localAllowed =
    nDecode > 0 &&
    (remotePairs == 0 || localMode == LOCAL_COMPETE || (localMode == LOCAL_THRESHOLD && uncached < pdThreshold));
  localNow = localAllowed;
  predict(localAllowed);

  const pairs = remotePairs + (localAllowed ? <f64>nDecode : 0);
  pairsTotal = pairs;
  stf(res, RES_PAIRS, pairs);
  if (pairs == 0) {
    stf(res, RES_OUTCOME, OUT_NO_CANDIDATES);
    return;
  }
  buildGroups(localAllowed);
  if (!choose(res, priority < 0, <u32>seed)) return;
  describe(res);
  if ((flags & REQ_NO_FALLBACKS) == 0) fallbacks(res);
  account();
}

// ---- predictor stage ----------------------------------------------------------------------------

let posSeg: i32 = 0;
let posFrac: f64 = 0;
/** The request's uncached prompt on the grid, kept for its in-batch prefill load. */
let prefillSeg: i32 = 0;
let prefillFrac: f64 = 0;

function gridPosition(x: f64): void {
  posSeg = 0;
  posFrac = 0;
  if (nGrid == 1 || x <= ldf(GRID, 0)) return;
  let s = 0;
  while (s < nGrid - 2 && ldf(GRID, s + 1) <= x) s++;
  posSeg = s;
  posFrac = (x - ldf(GRID, s)) / (ldf(GRID, s + 1) - ldf(GRID, s));
}

@inline function rowAt(curve: usize, seg: i32): usize {
  return curve + (<usize>(seg * nPods) << 3);
}

/**
 * The predictor stage: per pod, the curves interpolated at the request's uncached prompt (prefill,
 * local prefill) or ISL (decode wait, TPOT), max(lo + frac * (hi - lo), 0), plus the batch's load.
 * Two pods per SIMD lane pair, a scalar tail. The prefill values only over the range of pods that
 * holds the prefill candidates, the decode values over the decode candidates' (nothing reads the
 * others); the local values only when local pairs are candidates.
 */
function predict(withLocal: bool): void {
  gridPosition(uncached);
  const ps = posSeg;
  const pf = posFrac;
  prefillSeg = ps;
  prefillFrac = pf;
  gridPosition(reqIsl);
  const ds = posSeg;
  const df = posFrac;
  const up = nGrid > 1 ? 1 : 0;
  const zero = f64x2.splat(0);
  {
    const lo = rowAt(PF, ps);
    const hi = rowAt(PF, ps + up);
    const vf = f64x2.splat(pf);
    const n = pTo;
    let i = pFrom;
    for (; i + 2 <= n; i += 2) {
      const off = <usize>i << 3;
      const l = v128.load(lo + off);
      const pc = f64x2.max(f64x2.add(l, f64x2.mul(vf, f64x2.sub(v128.load(hi + off), l))), zero);
      v128.store(VA + off, f64x2.add(v128.load(WPQ + off), pc));
    }
    for (; i < n; i++) {
      const l = ldf(lo, i);
      const pc = max<f64>(l + pf * (ldf(hi, i) - l), 0);
      stf(VA, i, ldf(WPQ, i) + pc);
    }
  }
  const n = dTo;
  {
    const wLo = rowAt(DW, ds);
    const wHi = rowAt(DW, ds + up);
    const tLo = rowAt(TP, ds);
    const tHi = rowAt(TP, ds + up);
    const vf = f64x2.splat(df);
    let i = dFrom;
    for (; i + 2 <= n; i += 2) {
      const off = <usize>i << 3;
      const wl = v128.load(wLo + off);
      const tl = v128.load(tLo + off);
      const w = f64x2.max(f64x2.add(wl, f64x2.mul(vf, f64x2.sub(v128.load(wHi + off), wl))), zero);
      const t = f64x2.max(f64x2.add(tl, f64x2.mul(vf, f64x2.sub(v128.load(tHi + off), tl))), zero);
      v128.store(VB + off, f64x2.add(v128.load(WDQ + off), w));
      v128.store(VT + off, f64x2.add(v128.load(WTL + off), t));
    }
    for (; i < n; i++) {
      const wl = ldf(wLo, i);
      const tl = ldf(tLo, i);
      stf(VB, i, ldf(WDQ, i) + max<f64>(wl + df * (ldf(wHi, i) - wl), 0));
      stf(VT, i, ldf(WTL, i) + max<f64>(tl + df * (ldf(tHi, i) - tl), 0));
    }
  }
  if (withLocal) {
    const lo = rowAt(LPF, ps);
    const hi = rowAt(LPF, ps + up);
    const vf = f64x2.splat(pf);
    let i = dFrom;
    for (; i + 2 <= n; i += 2) {
      const off = <usize>i << 3;
      const l = v128.load(lo + off);
      const lc = f64x2.max(f64x2.add(l, f64x2.mul(vf, f64x2.sub(v128.load(hi + off), l))), zero);
      v128.store(VLC + off, lc);
      v128.store(VL + off, f64x2.add(v128.load(VB + off), lc));
    }
    for (; i < n; i++) {
      const l = ldf(lo, i);
      const lc = max<f64>(l + pf * (ldf(hi, i) - l), 0);
      stf(VLC, i, lc);
      stf(VL, i, ldf(VB, i) + lc);
    }
  }
  const bytes = uncached * kvBytesPerToken;
  cNode = overheadMs + bytes / (bwNode * 1e6);
  cRack = overheadMs + bytes / (bwRack * 1e6);
  cCross = overheadMs + bytes / (bwCross * 1e6);
}

// ---- sorting ------------------------------------------------------------------------------------

@inline function keyBefore(ka: f64, ia: i32, kb: f64, ib: i32): bool {
  return ka < kb || (ka == kb && ia < ib);
}

/** Insertion sort of (SK, ids) pairs in [lo, hi). */
function insertionRun(keys: usize, ids: usize, lo: i32, hi: i32): void {
  for (let i = lo + 1; i < hi; i++) {
    const k = ldf(keys, i);
    const x = ldi(ids, i);
    let j = i - 1;
    while (j >= lo && keyBefore(k, x, ldf(keys, j), ldi(ids, j))) {
      stf(keys, j + 1, ldf(keys, j));
      sti(ids, j + 1, ldi(ids, j));
      j--;
    }
    stf(keys, j + 1, k);
    sti(ids, j + 1, x);
  }
}

/** Below this length a merge sort beats the radix sort's fixed cost (eight 256-bucket passes). */
const RADIX_FROM: i32 = 256;

/** Merge sort of (SK, arr) pairs: insertion-sorted runs of 4, then branch-free merges. */
function mergeSort(arr: usize, len: i32): void {
  const RUN = 4;
  for (let lo = 0; lo < len; lo += RUN) insertionRun(SK, arr, lo, min<i32>(lo + RUN, len));
  let srcK = SK;
  let srcI = arr;
  let dstK = SK2;
  let dstI = MSCR;
  for (let width = RUN; width < len; width <<= 1) {
    for (let lo = 0; lo < len; lo += width << 1) {
      const mid = min<i32>(lo + width, len);
      const hi = min<i32>(lo + (width << 1), len);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        // Branch-free: the comparison is unpredictable and a misprediction costs more than the selects.
        const ki = ldf(srcK, i);
        const kj = ldf(srcK, j);
        const ii = ldi(srcI, i);
        const ij = ldi(srcI, j);
        const takeJ = (<i32>(kj < ki)) | ((<i32>(kj == ki)) & (<i32>(ij < ii)));
        stf(dstK, k, select<f64>(kj, ki, takeJ != 0));
        sti(dstI, k, select<i32>(ij, ii, takeJ != 0));
        j += takeJ;
        i += 1 - takeJ;
        k++;
      }
      for (; i < mid; i++, k++) {
        stf(dstK, k, ldf(srcK, i));
        sti(dstI, k, ldi(srcI, i));
      }
      for (; j < hi; j++, k++) {
        stf(dstK, k, ldf(srcK, j));
        sti(dstI, k, ldi(srcI, j));
      }
    }
    const tk = srcK;
    srcK = dstK;
    dstK = tk;
    const ti = srcI;
    srcI = dstI;
    dstI = ti;
  }
  if (srcI != arr) memory.copy(arr, srcI, <usize>len << 2);
}

/** Most keys one bucket of bucketSort may hold before the sort falls back (skewed keys). */
const BUCKET_MAX: i32 = 24;

/**
 * Sorts (SK, arr) pairs by (key, id), SK holding the keys of arr's current order: one counting pass
 * into about 2 × len buckets of the key range (the buckets split the bit patterns, which order like
 * the non-negative doubles), then insertion, which only moves keys within their bucket. Returns
 * false, leaving arr as it was, when some bucket holds more than BUCKET_MAX keys.
 */
function bucketSort(arr: usize, len: i32): bool {
  let lo = load<u64>(SK);
  let hi = lo;
  for (let j = 1; j < len; j++) {
    const k = load<u64>(SK + (<usize>j << 3));
    lo = select<u64>(k, lo, k < lo);
    hi = select<u64>(k, hi, k > hi);
  }
  const bits = 33 - clz<i32>(len - 1);
  const span = 64 - <i32>clz<u64>(hi - lo);
  const shift = <u64>(span > bits ? span - bits : 0);
  const nb = 1 << bits;
  memory.fill(HIST, 0, <usize>nb << 2);
  let most = 0;
  for (let j = 0; j < len; j++) {
    const h = HIST + (<usize>((load<u64>(SK + (<usize>j << 3)) - lo) >> shift) << 2);
    const c = load<i32>(h) + 1;
    store<i32>(h, c);
    most = max<i32>(most, c);
  }
  if (most > BUCKET_MAX) return false;
  let acc = 0;
  for (let b = 0; b < nb; b++) {
    const c = ldi(HIST, b);
    sti(HIST, b, acc);
    acc += c;
  }
  for (let j = 0; j < len; j++) {
    const k = load<u64>(SK + (<usize>j << 3));
    const h = HIST + (<usize>((k - lo) >> shift) << 2);
    const at = load<i32>(h);
    store<i32>(h, at + 1);
    store<u64>(SK2 + (<usize>at << 3), k);
    sti(MSCR, at, ldi(arr, j));
  }
  for (let i = 1; i < len; i++) {
    const k = load<u64>(SK2 + (<usize>i << 3));
    const x = ldi(MSCR, i);
    let j = i - 1;
    let kj = load<u64>(SK2 + (<usize>j << 3));
    let xj = ldi(MSCR, j);
    if (kj < k || (kj == k && xj < x)) continue;
    for (;;) {
      store<u64>(SK2 + (<usize>(j + 1) << 3), kj);
      sti(MSCR, j + 1, xj);
      j--;
      if (j < 0) break;
      kj = load<u64>(SK2 + (<usize>j << 3));
      xj = ldi(MSCR, j);
      if (kj < k || (kj == k && xj < x)) break;
    }
    store<u64>(SK2 + (<usize>(j + 1) << 3), k);
    sti(MSCR, j + 1, x);
  }
  memory.copy(arr, MSCR, <usize>len << 2);
  return true;
}

/**
 * Sorts the pod ids in arr by (vals, id); `byId` holds the same ids in ascending order. Returns
 * whether the order changed. The order persists between requests and often changes little, so an
 * almost sorted list is finished by insertion. Otherwise a bucket sort on the values' bits
 * (non-negative doubles order like their bit patterns); when the values are too skewed for its
 * buckets, a merge sort for short lists and an LSD radix sort for long ones, which is stable, so
 * starting from id order breaks ties by id.
 */
function sortPods(arr: usize, byId: usize, len: i32, vals: usize): bool {
  let descents = 0;
  let pk: f64 = 0;
  let pid = 0;
  for (let j = 0; j < len; j++) {
    const id = ldi(arr, j);
    const k = ldf(vals, id);
    stf(SK, j, k);
    descents += <i32>(j > 0 && keyBefore(k, id, pk, pid));
    pk = k;
    pid = id;
  }
  if (descents == 0) return false;
  if (descents <= 8 || len <= 8) {
    insertionRun(SK, arr, 0, len);
    return true;
  }
  if (bucketSort(arr, len)) return true;
  if (len <= RADIX_FROM) {
    mergeSort(arr, len);
    return true;
  }
  memory.fill(HIST, 0, 8 * 256 * 4);
  for (let j = 0; j < len; j++) {
    const id = ldi(byId, j);
    const key = reinterpret<u64>(ldf(vals, id));
    store<u64>(SK + (<usize>j << 3), key);
    sti(MSCR, j, id);
    for (let b = 0; b < 8; b++) {
      const h = HIST + ((<usize>((b << 8) + <i32>((key >> (<u64>(b << 3))) & 255))) << 2);
      store<i32>(h, load<i32>(h) + 1);
    }
  }
  let srcK = SK;
  let srcI = MSCR;
  let dstK = SK2;
  let dstI = arr;
  for (let b = 0; b < 8; b++) {
    const shift = <u64>(b << 3);
    const hist = HIST + ((<usize>(b << 8)) << 2);
    const first = <i32>((load<u64>(srcK) >> shift) & 255);
    if (ldi(hist, first) == len) continue;
    let acc = 0;
    for (let d = 0; d < 256; d++) {
      const c = ldi(hist, d);
      sti(hist, d, acc);
      acc += c;
    }
    for (let j = 0; j < len; j++) {
      const key = load<u64>(srcK + (<usize>j << 3));
      const d = <i32>((key >> shift) & 255);
      const at = ldi(hist, d);
      sti(hist, d, at + 1);
      store<u64>(dstK + (<usize>at << 3), key);
      sti(dstI, at, ldi(srcI, j));
    }
    const tk = srcK;
    srcK = dstK;
    dstK = tk;
    const ti = srcI;
    srcI = dstI;
    dstI = ti;
  }
  if (srcI != arr) memory.copy(arr, srcI, <usize>len << 2);
  return true;
}

// ---- lists, counts and groups -------------------------------------------------------------------
//
// Three levels of lists of the prefill pods sorted by (A, pod): level 0 holds them all, labelled by
// rack (by pod without topology); level 1 one list per rack, labelled by node; level 2 one list per
// node, labelled by pod. Per element: pod, value and prefix sum; lists whose labels repeat (level 0
// with topology, level 1) also keep the label and the start of its run of equal labels (SRS), which
// gives the last element before i outside a label in O(1). Lists labelled by pod need neither. The
// forward skip links (SNX) are needed only by `least`, `best` and no-SLO picks, and built on demand.
//
// Per rack, RINFO holds 8 i32: list base, length, prefix base, the two sweep pointers (cross, rack),
// the fill count, the last label and its run start. Per node, NINFO: base, length, prefix base, the
// two sweep pointers (rack, node), the fill count and the node's rack.

const INFO_BASE: usize = 0;
const INFO_LEN: usize = 4;
const INFO_PRE: usize = 8;
const INFO_PTR1: usize = 12;
const INFO_PTR2: usize = 16;
const INFO_FILL: usize = 20;
const INFO_LAST: usize = 24;
const INFO_RUN: usize = 28;
const INFO_RACK: usize = 24;

@inline function rackInfo(r: i32): usize {
  return RINFO + (<usize>r << 5);
}
@inline function nodeInfo(nd: i32): usize {
  return NINFO + (<usize>nd << 5);
}

/** Skip links of one list with repeating labels: SNX[i] = first index after i whose label differs (or len). */
function linkNext(off: i32, len: i32): void {
  let nx = len;
  for (let j = len - 1; j >= 0; j--) {
    if (j + 1 < len && ldi(SGRP, off + j + 1) != ldi(SGRP, off + j)) nx = j + 1;
    sti(SNX, off + j, nx);
  }
}

let nextReady: bool = false;

function ensureNext(): void {
  if (nextReady) return;
  nextReady = true;
  if (!topo) return;
  linkNext(0, nPrefill);
  for (let r = 0; r < nRacks; r++) {
    const ri = rackInfo(r);
    linkNext(load<i32>(ri, INFO_BASE), load<i32>(ri, INFO_LEN));
  }
}

/** First index >= i whose label is not `label` (len when none); needs ensureNext() unless unique. */
@inline function firstNot(unique: bool, off: i32, len: i32, i: i32, label: i32): i32 {
  if (unique) return i < len && ldi(SPODS, off + i) == label ? i + 1 : i;
  return i < len && ldi(SGRP, off + i) == label ? ldi(SNX, off + i) : i;
}

/** Last index <= i whose label is not `label`; -1 when none. */
@inline function lastNot(unique: bool, off: i32, i: i32, label: i32): i32 {
  if (unique) return i >= 0 && ldi(SPODS, off + i) == label ? i - 1 : i;
  return i >= 0 && ldi(SGRP, off + i) == label ? ldi(SRS, off + i) - 1 : i;
}

/** Sorts the prefill pods by A and fills every list level in one pass over them. */
function buildLists(): void {
  const np = nPrefill;
  sortPods(SORTA, PLIST, np, VA);
  nextReady = false;
  const pods = SPODS;
  const vals = SVALS;
  const pre = SPRE;
  let run: f64 = 0;
  stf(pre, 0, 0);
  if (!topo) {
    for (let j = 0; j < np; j++) {
      const p = ldi(SORTA, j);
      const v = ldf(VA, p);
      sti(pods, j, p);
      stf(vals, j, v);
      run += v;
      stf(pre, j + 1, run);
    }
    return;
  }
  const grp = SGRP;
  const rs = SRS;
  for (let r = 0; r < nRacks; r++) {
    const ri = rackInfo(r);
    store<i32>(ri, 0, INFO_FILL);
    store<i32>(ri, -1, INFO_LAST);
    stf(pre, load<i32>(ri, INFO_PRE), 0);
  }
  for (let nd = 0; nd < nNodes; nd++) {
    const ni = nodeInfo(nd);
    store<i32>(ni, 0, INFO_FILL);
    stf(pre, load<i32>(ni, INFO_PRE), 0);
  }
  let prev = -1;
  let start = 0;
  for (let j = 0; j < np; j++) {
    const p = ldi(SORTA, j);
    const v = ldf(VA, p);
    const r = ldi(RACK, p);
    const nd = ldi(NODE, p);
    sti(pods, j, p);
    stf(vals, j, v);
    sti(grp, j, r);
    start = select<i32>(start, j, r == prev);
    sti(rs, j, start);
    prev = r;
    run += v;
    stf(pre, j + 1, run);

    const ri = rackInfo(r);
    const at = load<i32>(ri, INFO_FILL);
    store<i32>(ri, at + 1, INFO_FILL);
    const e = load<i32>(ri, INFO_BASE) + at;
    sti(pods, e, p);
    stf(vals, e, v);
    sti(grp, e, nd);
    const rStart = select<i32>(load<i32>(ri, INFO_RUN), at, load<i32>(ri, INFO_LAST) == nd);
    store<i32>(ri, rStart, INFO_RUN);
    store<i32>(ri, nd, INFO_LAST);
    sti(rs, e, rStart);
    const pe = load<i32>(ri, INFO_PRE) + at;
    stf(pre, pe + 1, ldf(pre, pe) + v);

    const ni = nodeInfo(nd);
    const at2 = load<i32>(ni, INFO_FILL);
    store<i32>(ni, at2 + 1, INFO_FILL);
    const e2 = load<i32>(ni, INFO_BASE) + at2;
    sti(pods, e2, p);
    stf(vals, e2, v);
    const pe2 = load<i32>(ni, INFO_PRE) + at2;
    stf(pre, pe2 + 1, ldf(pre, pe2) + v);
  }
}

// Totals over every candidate pair of the request, gathered while the groups are built. Only the
// extreme of blended the strategy uses is gathered then (most: minPos; least, best: maxPos; the other
// stays infinite); minNeg, which only a negative draw needs, is gathered on demand by negativeMin(),
// except by uncutGroups, which has each negative group's extreme at hand. Minima and maxima do not depend on the order of the
// pairs, so the results equal the twin's, which gathers all three.
let pairsTotal: f64 = 0;
let posPairs: f64 = 0;
let negPairs: f64 = 0;
let minPos: f64 = 0;
let maxPos: f64 = 0;
let minNeg: f64 = 0;
/** Whether minNeg is gathered already (uncutGroups). */
let minNegReady: bool = false;
@inline function tpotOk(d: i32): bool {
  return !hasP || ldf(VT, d) <= budgetP;
}

// Per request, in pod order: the sum of A over every prefill pod, each rack's and each node's, from
// which every group's sum over all its members is one difference; and, when the pick has an SLO, the
// two largest and two smallest A by distinct label at each level (a node's by pod, a rack's over its
// nodes' extremes, the top level's over the racks', or by pod without topology), from which any
// group's largest and smallest member comes in O(1). One record of 64 bytes each: NSTAT per node,
// RSTAT per rack, TSTAT for the top level.
const ST_SUM: usize = 0;
const ST_MAX1: usize = 8;
const ST_MAXL: usize = 16;
const ST_MAX2: usize = 24;
const ST_MIN1: usize = 32;
const ST_MINL: usize = 40;
const ST_MIN2: usize = 48;

@inline function statOf(base: usize, i: i32): usize {
  return base + (<usize>i << 6);
}

@inline function feedMax(s: usize, v: f64, label: i32): void {
  const top = load<f64>(s, ST_MAX1);
  if (v > top) {
    store<f64>(s, top, ST_MAX2);
    store<f64>(s, v, ST_MAX1);
    store<i32>(s, label, ST_MAXL);
  } else if (v > load<f64>(s, ST_MAX2)) store<f64>(s, v, ST_MAX2);
}

@inline function feedMin(s: usize, v: f64, label: i32): void {
  const bottom = load<f64>(s, ST_MIN1);
  if (v < bottom) {
    store<f64>(s, bottom, ST_MIN2);
    store<f64>(s, v, ST_MIN1);
    store<i32>(s, label, ST_MINL);
  } else if (v < load<f64>(s, ST_MIN2)) store<f64>(s, v, ST_MIN2);
}

/** The largest A among the record's members not labelled `label` (-Infinity when none). */
@inline function maxExcept(s: usize, label: i32): f64 {
  return load<i32>(s, ST_MAXL) == label ? load<f64>(s, ST_MAX2) : load<f64>(s, ST_MAX1);
}

/** The smallest A among the record's members not labelled `label` (Infinity when none). */
@inline function minExcept(s: usize, label: i32): f64 {
  return load<i32>(s, ST_MINL) == label ? load<f64>(s, ST_MIN2) : load<f64>(s, ST_MIN1);
}

/** a < b ? b : a, without a branch (SIMD pseudo-maximum; scalar f64 selects and max branch). */
@inline function pmax(a: f64, b: f64): f64 {
  return f64x2.extract_lane(f64x2.pmax(f64x2.splat(a), f64x2.splat(b)), 0);
}

/** b < a ? b : a, without a branch. */
@inline function pmin(a: f64, b: f64): f64 {
  return f64x2.extract_lane(f64x2.pmin(f64x2.splat(a), f64x2.splat(b)), 0);
}

/**
 * The record `s` of the prefill pods listed at `from` (len of them): their sum of A and, with
 * `extremes`, its two largest and two smallest values and who holds the first of each (without,
 * -Infinity, Infinity and -1, which feedMax and feedMin then start from). In locals, without the record's stores and loads between the pods; the extremes
 * as feedMax and feedMin keep them, without branches (the comparisons are unpredictable): a new
 * largest A makes the old one the second (pmin(v, max1) is max1 then, and max2 <= max1), otherwise v
 * competes for second. Equal values have equal bits, A being neither NaN nor -0 (predict's max(.., 0)
 * gives +0 for -0), so which of two equal values a pseudo-extreme returns makes no difference.
 */
@inline function listStats(from: usize, len: i32, s: usize, extremes: bool): void {
  const va = VA;
  let sum: f64 = 0;
  let max1: f64 = -Infinity;
  let maxL = -1;
  let max2: f64 = -Infinity;
  let min1: f64 = Infinity;
  let minL = -1;
  let min2: f64 = Infinity;
  if (extremes) {
    for (let j = 0; j < len; j++) {
      const p = ldi(from, j);
      const v = ldf(va, p);
      sum += v;
      maxL = select<i32>(p, maxL, v > max1);
      max2 = pmax(max2, pmin(v, max1));
      max1 = pmax(max1, v);
      minL = select<i32>(p, minL, v < min1);
      min2 = pmin(min2, pmax(v, min1));
      min1 = pmin(min1, v);
    }
  } else {
    for (let j = 0; j < len; j++) sum += ldf(va, ldi(from, j));
  }
  store<f64>(s, sum, ST_SUM);
  store<f64>(s, max1, ST_MAX1);
  store<i32>(s, maxL, ST_MAXL);
  store<f64>(s, max2, ST_MAX2);
  store<f64>(s, min1, ST_MIN1);
  store<i32>(s, minL, ST_MINL);
  store<f64>(s, min2, ST_MIN2);
}

function podStats(extremes: bool): void {
  // One pass per list: the same additions in the same order as one pass over PLIST feeding every
  // record (RPL and NPL hold each rack's and node's prefill pods in PLIST's order). With topology the
  // top record's extremes come from the racks' below.
  const isTopo = topo;
  const top = TSTAT;
  listStats(PLIST, nPrefill, top, extremes && !isTopo);
  if (!isTopo) return;
  for (let r = 0; r < nRacks; r++) listStats(RPL + (<usize>ldi(ROFF, r) << 2), ldi(RLEN, r), statOf(RSTAT, r), false);
  for (let nd = 0; nd < nNodes; nd++) listStats(NPL + (<usize>ldi(NOFF, nd) << 2), ldi(NLEN, nd), statOf(NSTAT, nd), extremes);
  if (!extremes) return;
  for (let nd = 0; nd < nNodes; nd++) {
    const ns = statOf(NSTAT, nd);
    const rs = statOf(RSTAT, load<i32>(nodeInfo(nd), INFO_RACK));
    feedMax(rs, load<f64>(ns, ST_MAX1), nd);
    feedMin(rs, load<f64>(ns, ST_MIN1), nd);
  }
  for (let r = 0; r < nRacks; r++) {
    const rs = statOf(RSTAT, r);
    feedMax(top, load<f64>(rs, ST_MAX1), r);
    feedMin(top, load<f64>(rs, ST_MIN1), r);
  }
}

// One record of 32 bytes per group (decode pod d, class k < 3) at GROUPS + 32 (3 d + k): positive and
// negative pair counts, the end of the positive prefix in the group's list, the sums of A over the
// positives and the negatives. The record of class 0 also holds the local pair: -1 none, 0 negative,
// 1 positive.
const GR_POS: usize = 0;
const GR_NEG: usize = 4;
const GR_CPOS: usize = 8;
const GR_LOCAL: usize = 12;
const GR_SPOS: usize = 16;
const GR_SNEG: usize = 24;

@inline function grec(d: i32, k: i32): usize {
  return GROUPS + (<usize>(d * 3 + k) << 5);
}

const EXT_NONE: i32 = 0;
const EXT_MIN: i32 = 1;
const EXT_MAX: i32 = 2;

/**
 * One group: the list at off (len elements, prefix sums at pre) minus the members labelled ex, of
 * which exCntPos (summing to exSumPos) are excluded from the positives and exCntAll from all; sumAll
 * is the sum over the group's members (podStats). A group whose members are all positive has sumAll
 * as its positive sum, so that a group the SLO line does not cut gets the same record from here and
 * from uncutGroup. Writes the record; returns blended of the group's last positive member (EXT_MIN)
 * or first (EXT_MAX), NaN when there is none or no extreme is wanted.
 */
@inline function group(
  rec: usize, unique: bool, off: i32, len: i32, pre: i32, ex: i32, count: i32, q: f64,
  exCntPos: i32, exSumPos: f64, exCntAll: i32, sumAll: f64,
  ok: bool, ht: bool, ext: i32, wt: f64, budget: f64, tp: f64,
): f64 {
  const prefix = SPRE;
  const total = len - exCntAll;
  let cPos: i32;
  let pos: i32;
  let sumPos: f64;
  if (!ok) {
    cPos = 0;
    pos = 0;
    sumPos = 0;
  } else if (!ht) {
    cPos = len;
    pos = total;
    sumPos = sumAll;
  } else {
    cPos = count;
    pos = count - exCntPos;
    sumPos = pos == total ? sumAll : ldf(prefix, pre + count) - exSumPos;
  }
  store<i32>(rec, pos, GR_POS);
  store<i32>(rec, total - pos, GR_NEG);
  store<i32>(rec, cPos, GR_CPOS);
  store<f64>(rec, sumPos, GR_SPOS);
  store<f64>(rec, sumAll - sumPos, GR_SNEG);
  if (pos == 0 || ext == EXT_NONE) return NaN;
  const at = ext == EXT_MIN ? lastNot(unique, off, cPos - 1, ex) : firstNot(unique, off, len, 0, ex);
  const th = ht ? wt * (budget - (ldf(SVALS, off + at) + q)) : 0;
  return th + tp;
}

/** The pass over the decode pods of buildGroups, inlined with its flags as constants where they are. */
@inline function groupPass(order: usize, isTopo: bool, ht: bool, hp: bool, ext: i32, localAllowed: bool): void {
  const np = nPrefill;
  const nDec = nDecode;
  const vals = SVALS;
  const prefix = SPRE;
  const va = VA;
  const vb = VB;
  const vt = VT;
  const vl = VL;
  const roles = ROLES;
  const rack = RACK;
  const node = NODE;
  const groups = GROUPS;
  const bq = BQ;
  const budget = budgetT;
  const bP = budgetP;
  const wt = wT;
  const wp = wP;
  const cN = cNode;
  const cR = cRack;
  const cX = cCross;
  const allSum = load<f64>(TSTAT, ST_SUM);
  let posCount: f64 = 0;
  let lo: f64 = Infinity;
  let hi: f64 = -Infinity;
  let p0 = np;
  for (let i = 0; i < nDec; i++) {
    const d = ldi(order, i);
    const selfIn = (ldi(roles, d) & ROLE_PREFILL) != 0;
    const ad = selfIn ? ldf(va, d) : 0;
    const bd = ldf(vb, d);
    const td = ldf(vt, d);
    const ok = !hp || td <= bP;
    const tp = hp ? wp * (bP - td) : 0;
    const rec = groups + (<usize>(d * 3) << 5);
    if (isTopo) {
      const r = ldi(rack, d);
      const nd = ldi(node, d);
      const ri = rackInfo(r);
      const ni = nodeInfo(nd);
      const rOff = load<i32>(ri, INFO_BASE);
      const rLen = load<i32>(ri, INFO_LEN);
      const rPre = load<i32>(ri, INFO_PRE);
      const nOff = load<i32>(ni, INFO_BASE);
      const nLen = load<i32>(ni, INFO_LEN);
      const nPre = load<i32>(ni, INFO_PRE);
      const qNode = bd + cN;
      const qRack = bd + cR;
      const qCross = bd + cX;
      const bqs = bq + (<usize>d << 5);
      store<f64>(bqs, (ht ? wt * (budget - qNode) : 0) + tp, 0);
      store<f64>(bqs, (ht ? wt * (budget - qRack) : 0) + tp, 8);
      store<f64>(bqs, (ht ? wt * (budget - qCross) : 0) + tp, 16);
      let c1x = 0;
      let c1r = 0;
      let c2r = 0;
      let c2n = 0;
      if (ht) {
        while (p0 > 0 && !(ldf(vals, p0 - 1) + qCross <= budget)) p0--;
        c1x = load<i32>(ri, INFO_PTR1);
        while (c1x > 0 && !(ldf(vals, rOff + c1x - 1) + qCross <= budget)) c1x--;
        store<i32>(ri, c1x, INFO_PTR1);
        c1r = load<i32>(ri, INFO_PTR2);
        while (c1r > 0 && !(ldf(vals, rOff + c1r - 1) + qRack <= budget)) c1r--;
        store<i32>(ri, c1r, INFO_PTR2);
        c2r = load<i32>(ni, INFO_PTR1);
        while (c2r > 0 && !(ldf(vals, nOff + c2r - 1) + qRack <= budget)) c2r--;
        store<i32>(ni, c2r, INFO_PTR1);
        c2n = load<i32>(ni, INFO_PTR2);
        while (c2n > 0 && !(ldf(vals, nOff + c2n - 1) + qNode <= budget)) c2n--;
        store<i32>(ni, c2n, INFO_PTR2);
      }
      const selfPos = selfIn && (!ht || ad + qNode <= budget);
      const nSum = load<f64>(statOf(NSTAT, nd), ST_SUM);
      const rSum = load<f64>(statOf(RSTAT, r), ST_SUM);
      const b0 = group(rec, true, nOff, nLen, nPre, d, c2n, qNode,
        selfPos ? 1 : 0, selfPos ? ad : 0, selfIn ? 1 : 0, nSum - (selfIn ? ad : 0), ok, ht, ext, wt, budget, tp);
      const b1 = group(rec + 32, false, rOff, rLen, rPre, nd, c1r, qRack,
        c2r, ldf(prefix, nPre + c2r), nLen, rSum - nSum, ok, ht, ext, wt, budget, tp);
      const b2 = group(rec + 64, false, 0, np, 0, r, p0, qCross,
        c1x, ldf(prefix, rPre + c1x), rLen, allSum - rSum, ok, ht, ext, wt, budget, tp);
      posCount += <f64>(load<i32>(rec, GR_POS) + load<i32>(rec + 32, GR_POS) + load<i32>(rec + 64, GR_POS));
      if (ext == EXT_MIN) lo = pmin(pmin(pmin(lo, b0), b1), b2);
      if (ext == EXT_MAX) hi = pmax(pmax(pmax(hi, b0), b1), b2);
    } else {
      const q = bd + cX;
      store<f64>(bq + (<usize>d << 5), (ht ? wt * (budget - q) : 0) + tp, 16);
      if (ht) {
        while (p0 > 0 && !(ldf(vals, p0 - 1) + q <= budget)) p0--;
      }
      const selfPos = selfIn && (!ht || ad + q <= budget);
      store<i32>(rec, 0, GR_POS);
      store<i32>(rec, 0, GR_NEG);
      store<i32>(rec + 32, 0, GR_POS);
      store<i32>(rec + 32, 0, GR_NEG);
      const b2 = group(rec + 64, true, 0, np, 0, d, p0, q,
        selfPos ? 1 : 0, selfPos ? ad : 0, selfIn ? 1 : 0, allSum - (selfIn ? ad : 0), ok, ht, ext, wt, budget, tp);
      posCount += <f64>load<i32>(rec + 64, GR_POS);
      if (ext == EXT_MIN) lo = pmin(lo, b2);
      if (ext == EXT_MAX) hi = pmax(hi, b2);
    }
    if (!localAllowed) {
      store<i32>(rec, -1, GR_LOCAL);
      continue;
    }
    const lv = ldf(vl, d);
    const positive = ok && (!ht || lv <= budget);
    store<i32>(rec, positive ? 1 : 0, GR_LOCAL);
    if (positive) {
      posCount++;
      if (ext != EXT_NONE) {
        const b = (ht ? wt * (budget - lv) : 0) + tp;
        if (ext == EXT_MIN) lo = pmin(lo, b);
        if (ext == EXT_MAX) hi = pmax(hi, b);
      }
    }
  }
  posPairs = posCount;
  negPairs = pairsTotal - posCount;
  minPos = lo;
  maxPos = hi;
  minNeg = Infinity;
  minNegReady = false;
}

/** Set by uncutGroup when the SLO line cuts its group. */
let groupCut: bool = false;

/**
 * One group the SLO line does not cut, from its member count and sum and its largest and smallest A:
 * the record group() writes for it, and the same extreme. Sets groupCut instead when some members are
 * positive and some are not. A + q <= budget holds for every member when it holds for the largest and
 * for none when it fails for the smallest (rounding is monotone), so the test agrees with the lists'.
 */
@inline function uncutGroup(
  rec: usize, total: i32, sumAll: f64, aMax: f64, aMin: f64, q: f64,
  ok: bool, ht: bool, ext: i32, wt: f64, budget: f64, tp: f64,
): f64 {
  let pos = 0;
  if (ok && total > 0) {
    if (!ht || aMax + q <= budget) pos = total;
    else if (aMin + q <= budget) {
      groupCut = true;
      return NaN;
    }
  }
  const sumPos = ok && pos == total ? sumAll : 0;
  store<i32>(rec, pos, GR_POS);
  store<i32>(rec, total - pos, GR_NEG);
  store<f64>(rec, sumPos, GR_SPOS);
  store<f64>(rec, sumAll - sumPos, GR_SNEG);
  if (pos == 0 || ext == EXT_NONE) return NaN;
  const th = ht ? wt * (budget - ((ext == EXT_MIN ? aMax : aMin) + q)) : 0;
  return th + tp;
}

// A row of 128 bytes per node at NUNC + 128 nd for uncutPass: each class's member count, sum of A,
// largest and smallest A for a decode pod on the node that is not itself a prefill pod. Classes 1
// and 2 depend on the node only, and so does class 0 but for the pod itself.
const UN_X0: usize = 0;
const UN_M0: usize = 8;
const UN_S0: usize = 16;
const UN_X1: usize = 24;
const UN_M1: usize = 32;
const UN_S1: usize = 40;
const UN_X2: usize = 48;
const UN_M2: usize = 56;
const UN_S2: usize = 64;
const UN_T0: usize = 72;
const UN_T1: usize = 76;
const UN_T2: usize = 80;

/**
 * minNeg as negativeMin gathers it, over one more group: the blended of a negative group's largest
 * member (its A plus the decode pod's B and the transfer, `aq`), when the group has negative pairs.
 */
@inline function negativeGroupMin(mn: f64, rec: usize, aq: f64, ht: bool, wt: f64, budget: f64, tp: f64): f64 {
  if (load<i32>(rec, GR_NEG) <= 0) return mn;
  const b = (ht ? wt * (budget - aq) : 0) + tp;
  return pmin(mn, b);
}

/** The rows of uncutPass, from podStats's records: once a pick instead of once a decode pod. */
function uncutNodes(): void {
  const np = nPrefill;
  const top = TSTAT;
  const allSum = load<f64>(top, ST_SUM);
  for (let nd = 0; nd < nNodes; nd++) {
    const ni = nodeInfo(nd);
    const r = load<i32>(ni, INFO_RACK);
    const ns = statOf(NSTAT, nd);
    const rs = statOf(RSTAT, r);
    const nLen = load<i32>(ni, INFO_LEN);
    const rLen = load<i32>(rackInfo(r), INFO_LEN);
    const nSum = load<f64>(ns, ST_SUM);
    const rSum = load<f64>(rs, ST_SUM);
    const row = NUNC + (<usize>nd << 7);
    store<f64>(row, load<f64>(ns, ST_MAX1), UN_X0);
    store<f64>(row, load<f64>(ns, ST_MIN1), UN_M0);
    store<f64>(row, nSum, UN_S0);
    store<f64>(row, maxExcept(rs, nd), UN_X1);
    store<f64>(row, minExcept(rs, nd), UN_M1);
    store<f64>(row, rSum - nSum, UN_S1);
    store<f64>(row, maxExcept(top, r), UN_X2);
    store<f64>(row, minExcept(top, r), UN_M2);
    store<f64>(row, allSum - rSum, UN_S2);
    store<i32>(row, nLen, UN_T0);
    store<i32>(row, rLen - nLen, UN_T1);
    store<i32>(row, np - rLen, UN_T2);
  }
}

/**
 * buildGroups without sorting when no group is cut, as when a pool is overloaded (every pair negative)
 * or idle (every pair positive): each group is all positive or all negative, and its sums and extreme
 * come from podStats. Writes everything groupPass writes but the sorted lists and the positive ends
 * (GR_CPOS), which only argBest reads; false as soon as a group is cut (the general pass redoes it).
 */
function uncutGroups(ext: i32, localAllowed: bool): bool {
  // The common case (topology, TTFT and TPOT SLOs, most, no local pairs) in its own copy, with those
  // branches folded away.
  if (topo && hasT && hasP && ext == EXT_MIN && !localAllowed) return uncutPass(true, true, true, EXT_MIN, false);
  return uncutPass(topo, hasT, hasP, ext, localAllowed);
}

@inline function uncutPass(isTopo: bool, ht: bool, hp: bool, ext: i32, localAllowed: bool): bool {
  const np = nPrefill;
  const budget = budgetT;
  const bP = budgetP;
  const wt = wT;
  const wp = wP;
  const top = TSTAT;
  const allSum = load<f64>(top, ST_SUM);
  let posCount: f64 = 0;
  let lo: f64 = Infinity;
  let hi: f64 = -Infinity;
  let mn: f64 = Infinity;
  groupCut = false;
  if (isTopo) uncutNodes();
  for (let i = 0; i < nDecode; i++) {
    const d = ldi(DLIST, i);
    const selfIn = (ldi(ROLES, d) & ROLE_PREFILL) != 0;
    const ad = selfIn ? ldf(VA, d) : 0;
    const bd = ldf(VB, d);
    const td = ldf(VT, d);
    const ok = !hp || td <= bP;
    const tp = hp ? wp * (bP - td) : 0;
    const rec = GROUPS + (<usize>(d * 3) << 5);
    if (isTopo) {
      const row = NUNC + (<usize>ldi(NODE, d) << 7);
      let t0 = load<i32>(row, UN_T0);
      let s0 = load<f64>(row, UN_S0);
      let x0 = load<f64>(row, UN_X0);
      let m0 = load<f64>(row, UN_M0);
      if (selfIn) {
        const ns = statOf(NSTAT, ldi(NODE, d));
        t0--;
        s0 = load<f64>(ns, ST_SUM) - ad;
        x0 = maxExcept(ns, d);
        m0 = minExcept(ns, d);
      }
      const x1 = load<f64>(row, UN_X1);
      const x2 = load<f64>(row, UN_X2);
      const q0 = bd + cNode;
      const q1 = bd + cRack;
      const q2 = bd + cCross;
      const bqs = BQ + (<usize>d << 5);
      store<f64>(bqs, (ht ? wt * (budget - q0) : 0) + tp, 0);
      store<f64>(bqs, (ht ? wt * (budget - q1) : 0) + tp, 8);
      store<f64>(bqs, (ht ? wt * (budget - q2) : 0) + tp, 16);
      const b0 = uncutGroup(rec, t0, s0, x0, m0, q0, ok, ht, ext, wt, budget, tp);
      const b1 = uncutGroup(rec + 32, load<i32>(row, UN_T1), load<f64>(row, UN_S1), x1, load<f64>(row, UN_M1),
        q1, ok, ht, ext, wt, budget, tp);
      const b2 = uncutGroup(rec + 64, load<i32>(row, UN_T2), load<f64>(row, UN_S2), x2, load<f64>(row, UN_M2),
        q2, ok, ht, ext, wt, budget, tp);
      if (groupCut) return false;
      mn = negativeGroupMin(mn, rec, x0 + q0, ht, wt, budget, tp);
      mn = negativeGroupMin(mn, rec + 32, x1 + q1, ht, wt, budget, tp);
      mn = negativeGroupMin(mn, rec + 64, x2 + q2, ht, wt, budget, tp);
      posCount += <f64>(load<i32>(rec, GR_POS) + load<i32>(rec + 32, GR_POS) + load<i32>(rec + 64, GR_POS));
      if (ext == EXT_MIN) lo = pmin(pmin(pmin(lo, b0), b1), b2);
      if (ext == EXT_MAX) hi = pmax(pmax(pmax(hi, b0), b1), b2);
    } else {
      store<i32>(rec, 0, GR_POS);
      store<i32>(rec, 0, GR_NEG);
      store<i32>(rec + 32, 0, GR_POS);
      store<i32>(rec + 32, 0, GR_NEG);
      const x2 = maxExcept(top, d);
      const q2 = bd + cCross;
      store<f64>(BQ + (<usize>d << 5), (ht ? wt * (budget - q2) : 0) + tp, 16);
      const b2 = uncutGroup(rec + 64, np - (selfIn ? 1 : 0), allSum - (selfIn ? ad : 0), x2, minExcept(top, d),
        q2, ok, ht, ext, wt, budget, tp);
      if (groupCut) return false;
      mn = negativeGroupMin(mn, rec + 64, x2 + q2, ht, wt, budget, tp);
      posCount += <f64>load<i32>(rec + 64, GR_POS);
      if (ext == EXT_MIN) lo = pmin(lo, b2);
      if (ext == EXT_MAX) hi = pmax(hi, b2);
    }
    if (!localAllowed) {
      store<i32>(rec, -1, GR_LOCAL);
      continue;
    }
    const lv = ldf(VL, d);
    const positive = ok && (!ht || lv <= budget);
    store<i32>(rec, positive ? 1 : 0, GR_LOCAL);
    const b = (ht ? wt * (budget - lv) : 0) + tp;
    if (positive) {
      posCount++;
      if (ext == EXT_MIN) lo = pmin(lo, b);
      if (ext == EXT_MAX) hi = pmax(hi, b);
    } else mn = pmin(mn, b);
  }
  posPairs = posCount;
  negPairs = pairsTotal - posCount;
  minPos = lo;
  maxPos = hi;
  minNeg = mn;
  minNegReady = true;
  return true;
}

/**
 * The groups of every decode pod and the totals. With a TTFT SLO the decode pods are visited in
 * ascending B, so that each count (how many of a list's prefill pods satisfy A + (B + c) <= budget)
 * is a pointer that only moves down: one sweep per list and transfer cost, merged into this pass.
 */
function buildGroups(localAllowed: bool): void {
  const ht = hasT;
  const hp = hasP;
  const slo = ht || hp;
  const ext = !slo ? EXT_NONE : strategy == STRATEGY_MOST ? EXT_MIN : EXT_MAX;
  podStats(slo);
  // argBest ("best", no SLO) walks the sorted lists; the draws need only the records.
  if (slo && strategy <= STRATEGY_LEAST && uncutGroups(ext, localAllowed)) {
    uncutPicks++;
    return;
  }
  buildLists();
  if (ext != EXT_MIN) ensureNext();
  const np = nPrefill;
  const nDec = nDecode;
  let order = DLIST;
  if (ht) {
    sortPods(SORTB, DLIST, nDec, VB);
    order = SORTB;
  }
  const isTopo = topo;
  if (isTopo) {
    for (let r = 0; r < nRacks; r++) {
      const ri = rackInfo(r);
      const len = load<i32>(ri, INFO_LEN);
      store<i32>(ri, len, INFO_PTR1);
      store<i32>(ri, len, INFO_PTR2);
    }
    for (let nd = 0; nd < nNodes; nd++) {
      const ni = nodeInfo(nd);
      const len = load<i32>(ni, INFO_LEN);
      store<i32>(ni, len, INFO_PTR1);
      store<i32>(ni, len, INFO_PTR2);
    }
  }
  // The common case (topology, a TTFT SLO, most) in its own copy, with those branches folded away.
  if (isTopo && ht && ext == EXT_MIN) groupPass(order, true, true, hp, EXT_MIN, localAllowed);
  else groupPass(order, isTopo, ht, hp, ext, localAllowed);
}

// The list of one group, for the passes that need its members: offset, length, excluded label, q,
// and whether the list is labelled by pod.
let gOff: i32 = 0;
let gLen: i32 = 0;
let gEx: i32 = 0;
let gQ: f64 = 0;
let gUnique: bool = false;

function groupAt(d: i32, k: i32): void {
  const bd = ldf(VB, d);
  if (!topo) {
    gOff = 0;
    gLen = k == CLASS_CROSS ? nPrefill : 0;
    gEx = d;
    gQ = bd + cCross;
    gUnique = true;
  } else if (k == CLASS_NODE) {
    const ni = nodeInfo(ldi(NODE, d));
    gOff = load<i32>(ni, INFO_BASE);
    gLen = load<i32>(ni, INFO_LEN);
    gEx = d;
    gQ = bd + cNode;
    gUnique = true;
  } else if (k == CLASS_RACK) {
    const ri = rackInfo(ldi(RACK, d));
    gOff = load<i32>(ri, INFO_BASE);
    gLen = load<i32>(ri, INFO_LEN);
    gEx = ldi(NODE, d);
    gQ = bd + cRack;
    gUnique = false;
  } else {
    gOff = 0;
    gLen = nPrefill;
    gEx = ldi(RACK, d);
    gQ = bd + cCross;
    gUnique = false;
  }
}

/** minNeg over every negative pair: each group's last negative member is its largest (podStats). */
function negativeMin(): void {
  const ht = hasT;
  const hp = hasP;
  const wt = wT;
  const wp = wP;
  const budget = budgetT;
  const bP = budgetP;
  const top = TSTAT;
  const isTopo = topo;
  let mn: f64 = Infinity;
  for (let di = 0; di < nDecode; di++) {
    const d = ldi(DLIST, di);
    const rec = grec(d, 0);
    const bd = ldf(VB, d);
    const tp = hp ? wp * (bP - ldf(VT, d)) : 0;
    if (isTopo) {
      const nd = ldi(NODE, d);
      const r = ldi(RACK, d);
      if (load<i32>(rec, GR_NEG) > 0) {
        const b = (ht ? wt * (budget - (maxExcept(statOf(NSTAT, nd), d) + (bd + cNode))) : 0) + tp;
        mn = select<f64>(b, mn, b < mn);
      }
      if (load<i32>(rec + 32, GR_NEG) > 0) {
        const b = (ht ? wt * (budget - (maxExcept(statOf(RSTAT, r), nd) + (bd + cRack))) : 0) + tp;
        mn = select<f64>(b, mn, b < mn);
      }
      if (load<i32>(rec + 64, GR_NEG) > 0) {
        const b = (ht ? wt * (budget - (maxExcept(top, r) + (bd + cCross))) : 0) + tp;
        mn = select<f64>(b, mn, b < mn);
      }
    } else if (load<i32>(rec + 64, GR_NEG) > 0) {
      const b = (ht ? wt * (budget - (maxExcept(top, d) + (bd + cCross))) : 0) + tp;
      mn = select<f64>(b, mn, b < mn);
    }
    if (load<i32>(rec, GR_LOCAL) == 0) {
      const b = (ht ? wt * (budget - ldf(VL, d)) : 0) + tp;
      mn = select<f64>(b, mn, b < mn);
    }
  }
  minNeg = mn;
}

// ---- selection ----------------------------------------------------------------------------------

@inline function blend(ttft: f64, d: i32): f64 {
  const th = hasT ? wT * (budgetT - ttft) : 0;
  const tp = hasP ? wP * (budgetP - ldf(VT, d)) : 0;
  return th + tp;
}

@inline function e2e(ttft: f64, d: i32): f64 {
  return ttft + ldf(VT, d) * reqOsl;
}

function nextUniform(): f64 {
  rng += 0x9e3779b9;
  let z: u32 = rng;
  z = (z ^ (z >>> 16)) * 0x85ebca6b;
  z = (z ^ (z >>> 13)) * 0xc2b2ae35;
  z = z ^ (z >>> 16);
  return <f64>z / 4294967296.0;
}

/** Steps 1–5 of SPEC.md §2. Sets chosenP/D/K and the outcome; false when nothing is picked. */
function choose(res: usize, sheddable: bool, seed: u32): bool {
  if (!hasT && !hasP) {
    stf(res, RES_OUTCOME, OUT_NO_SLO);
    argBest(true, 0);
    return true;
  }
  stf(res, RES_POSITIVE, posPairs);
  if (posPairs == 0 && sheddable && shedSheddable) {
    stf(res, RES_OUTCOME, OUT_SHED);
    return false;
  }
  rng = seed;
  const u1 = nextUniform();
  if (!sheddable && u1 < exploreProb && negPairs > 0) {
    stf(res, RES_OUTCOME, OUT_EXPLORE);
    draw(DRAW_EXPLORE, 0);
    return true;
  }
  if (posPairs > 0) {
    stf(res, RES_OUTCOME, OUT_POSITIVE);
    if (strategy == STRATEGY_MOST) draw(DRAW_MOST, minPos);
    else if (strategy == STRATEGY_LEAST) draw(DRAW_LEAST, maxPos);
    else argBest(false, maxPos);
    return true;
  }
  stf(res, RES_OUTCOME, OUT_NEGATIVE);
  if (!minNegReady) negativeMin();
  draw(DRAW_NEGATIVE, minNeg);
  return true;
}

@inline function pairWeight(kind: i32, b: f64, ref: f64): f64 {
  return kind == DRAW_LEAST ? ref - b + 1 : b - ref + 1;
}

@inline function transferOf(k: i32): f64 {
  return k == CLASS_NODE ? cNode : k == CLASS_RACK ? cRack : cCross;
}

/**
 * The weights pass of draw for most and negative draws (the same formula over the positives or the
 * negatives), on locals and unrolled by class: writes ACC and drawAcc, drawFirst, drawLast; returns
 * the total; each group's th + tp from BQ (the pass that built the groups wrote it, the same
 * expression). Inlined with its flags as constants where they are; without local pairs (withLocal
 * false) each local slot weighs 0, which adds nothing to the sums. The three classes' blocks are
 * written out: the same block in a loop over them cost 1.05-1.07 of this (bench:kernel-ab, stop 24).
 */
@inline function weighGroups(cntAt: usize, sumAt: usize, localWanted: i32, ht: bool, hp: bool, withLocal: bool, slope: f64, ref: f64): f64 {
  let total: f64 = 0;
  let acc: f64 = 0;
  let firstSlot = -1;
  let lastSlot = -1;
  const accs = ACC;
  const wt = wT;
  const wp = wP;
  const budget = budgetT;
  const bP = budgetP;
  const bq = BQ;
  const vt = VT;
  const vl = VL;
  const dlist = DLIST;
  const groups = GROUPS;
  for (let di = 0; di < nDecode; di++) {
    const d = ldi(dlist, di);
    const rec0 = groups + (<usize>(d * 3) << 5);
    const bqs = bq + (<usize>d << 5);
    const base = di << 2;
    {
      const pos = load<i32>(rec0 + 0 + cntAt);
      let w: f64 = 0;
      if (pos > 0) w = <f64>pos * (load<f64>(bqs, 0) - ref + 1) - slope * load<f64>(rec0 + 0 + sumAt);
      total += w;
      if (w > 0) {
        acc += w;
        if (firstSlot < 0) firstSlot = base + 0;
        lastSlot = base + 0;
      }
      stf(accs, base + 0, acc);
    }
    {
      const pos = load<i32>(rec0 + 32 + cntAt);
      let w: f64 = 0;
      if (pos > 0) w = <f64>pos * (load<f64>(bqs, 8) - ref + 1) - slope * load<f64>(rec0 + 32 + sumAt);
      total += w;
      if (w > 0) {
        acc += w;
        if (firstSlot < 0) firstSlot = base + 1;
        lastSlot = base + 1;
      }
      stf(accs, base + 1, acc);
    }
    {
      const pos = load<i32>(rec0 + 64 + cntAt);
      let w: f64 = 0;
      if (pos > 0) w = <f64>pos * (load<f64>(bqs, 16) - ref + 1) - slope * load<f64>(rec0 + 64 + sumAt);
      total += w;
      if (w > 0) {
        acc += w;
        if (firstSlot < 0) firstSlot = base + 2;
        lastSlot = base + 2;
      }
      stf(accs, base + 2, acc);
    }
    if (!withLocal) stf(accs, base + 3, acc);
    else {
      let w: f64 = 0;
      if (load<i32>(rec0, GR_LOCAL) == localWanted) {
        const tp = hp ? wp * (bP - ldf(vt, d)) : 0;
        const th = ht ? wt * (budget - ldf(vl, d)) : 0;
        w = th + tp - ref + 1;
      }
      total += w;
      if (w > 0) {
        acc += w;
        if (firstSlot < 0) firstSlot = base + 3;
        lastSlot = base + 3;
      }
      stf(accs, base + 3, acc);
    }
  }
  drawAcc = acc;
  drawFirst = firstSlot;
  drawLast = lastSlot;
  return total;
}

let drawAcc: f64 = 0;
let drawFirst: i32 = -1;
let drawLast: i32 = -1;

/**
 * A weighted draw: a group by its total weight, then a member by a scan in pod order.
 * most: blended - min + 1 over positives; least: max - blended + 1 over positives;
 * negative: blended - min + 1 over negatives; explore: 1 per negative pair.
 * The group is found by a binary search over the running sums the twin's scan forms (ACC).
 */
function draw(kind: i32, ref: f64): void {
  const slope = hasT ? wT : 0;
  const positive = kind == DRAW_MOST || kind == DRAW_LEAST;
  let total: f64 = 0;
  let acc: f64 = 0;
  let firstSlot = -1;
  let lastSlot = -1;
  const accs = ACC;
  if (kind == DRAW_MOST || kind == DRAW_NEGATIVE) {
    const most = kind == DRAW_MOST;
    // The common case (TTFT and TPOT SLOs, no local pairs) in its own copies, with those branches
    // folded away.
    if (hasT && hasP && !localNow) {
      if (most) total = weighGroups(GR_POS, GR_SPOS, 1, true, true, false, slope, ref);
      else total = weighGroups(GR_NEG, GR_SNEG, 0, true, true, false, slope, ref);
    } else total = weighGroups(most ? GR_POS : GR_NEG, most ? GR_SPOS : GR_SNEG, most ? 1 : 0, hasT, hasP, true, slope, ref);
    acc = drawAcc;
    firstSlot = drawFirst;
    lastSlot = drawLast;
  } else for (let di = 0; di < nDecode; di++) {
    const d = ldi(DLIST, di);
    const rec0 = grec(d, 0);
    const bd = ldf(VB, d);
    const tp = hasP ? wP * (budgetP - ldf(VT, d)) : 0;
    for (let k = 0; k < 3; k++) {
      const rec = rec0 + (<usize>k << 5);
      let w: f64 = 0;
      if (kind == DRAW_EXPLORE) w = <f64>load<i32>(rec, GR_NEG);
      else if (positive) {
        const pos = load<i32>(rec, GR_POS);
        if (pos > 0) {
          const th = hasT ? wT * (budgetT - (bd + transferOf(k))) : 0;
          const bq = th + tp;
          w = kind == DRAW_MOST
            ? <f64>pos * (bq - ref + 1) - slope * load<f64>(rec, GR_SPOS)
            : <f64>pos * (ref - bq + 1) + slope * load<f64>(rec, GR_SPOS);
        }
      } else {
        const neg = load<i32>(rec, GR_NEG);
        if (neg > 0) {
          const th = hasT ? wT * (budgetT - (bd + transferOf(k))) : 0;
          w = <f64>neg * (th + tp - ref + 1) - slope * load<f64>(rec, GR_SNEG);
        }
      }
      total += w;
      const slot = di * 4 + k;
      if (w > 0) {
        acc += w;
        if (firstSlot < 0) firstSlot = slot;
        lastSlot = slot;
      }
      stf(accs, slot, acc);
    }
    const local = load<i32>(rec0, GR_LOCAL);
    let w: f64 = 0;
    if (local >= 0 && (positive ? local == 1 : local == 0)) {
      if (kind == DRAW_EXPLORE) w = 1;
      else {
        const th = hasT ? wT * (budgetT - ldf(VL, d)) : 0;
        w = pairWeight(kind, th + tp, ref);
      }
    }
    total += w;
    const slot = di * 4 + 3;
    if (w > 0) {
      acc += w;
      if (firstSlot < 0) firstSlot = slot;
      lastSlot = slot;
    }
    stf(accs, slot, acc);
  }
  const target = nextUniform() * total;
  // The twin's scan stops at the first positive-weight slot whose running sum exceeds the target:
  // the first slot where the running sum exceeds it at all, since the sum grows only at such slots.
  let chosen = lastSlot;
  if (target < 0) chosen = firstSlot;
  else if (target < acc) {
    let lo = 0;
    let hi = lastSlot;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (target < ldf(accs, mid)) hi = mid;
      else lo = mid + 1;
    }
    chosen = lo;
  }
  const di = chosen >> 2;
  const k = chosen & 3;
  const d = ldi(DLIST, di);
  chosenD = d;
  chosenK = k;
  if (k == CLASS_LOCAL) {
    chosenP = d;
    return;
  }
  // The member: every prefill pod in snapshot order, weighed once into MW, then scanned.
  const q = ldf(VB, d) + (topo ? transferOf(k) : cCross);
  const ht = hasT;
  const wt = wT;
  const budget = budgetT;
  const ok = tpotOk(d);
  const tp = hasP ? wP * (budgetP - ldf(VT, d)) : 0;
  const explore = kind == DRAW_EXPLORE;
  const least = kind == DRAW_LEAST;
  // Membership by link class: same node; same rack, other node; other rack (any pod but d without
  // topology). The scan visits the node's or the rack's prefill pods only, in snapshot order, and
  // weighs the members alone: the pods it passes over weigh 0, which adds nothing to the sums.
  const byRack = topo && k == CLASS_RACK;
  const byCross = topo && k == CLASS_CROSS;
  const rd = ldi(RACK, d);
  const nd = ldi(NODE, d);
  let from = PLIST;
  let count = nPrefill;
  if (topo && k == CLASS_NODE) {
    from = NPL + (<usize>ldi(NOFF, nd) << 2);
    count = ldi(NLEN, nd);
  } else if (byRack) {
    from = RPL + (<usize>ldi(ROFF, rd) << 2);
    count = ldi(RLEN, rd);
  } else if (byCross && nRacks == 2) {
    // Two racks: the other rack's pods are the members.
    from = RPL + (<usize>ldi(ROFF, 1 - rd) << 2);
    count = ldi(RLEN, 1 - rd);
  }
  const va = VA;
  const rack = RACK;
  const node = NODE;
  const mw = MW;
  const ids = MIDS;
  let members = 0;
  let sum: f64 = 0;
  for (let j = 0; j < count; j++) {
    const p = ldi(from, j);
    if (byRack ? ldi(node, p) == nd : byCross ? ldi(rack, p) == rd : p == d) continue;
    let w: f64 = 0;
    const t = ldf(va, p) + q;
    if ((ok && (!ht || t <= budget)) == positive) {
      if (explore) w = 1;
      else {
        const b = (ht ? wt * (budget - t) : 0) + tp;
        w = least ? ref - b + 1 : b - ref + 1;
      }
    }
    stf(mw, members, w);
    sti(ids, members, p);
    members++;
    sum += w;
  }
  const inner = nextUniform() * sum;
  let acc2: f64 = 0;
  let pick = -1;
  for (let j = 0; j < members; j++) {
    const w = ldf(mw, j);
    if (w <= 0) continue;
    acc2 += w;
    pick = j;
    if (inner < acc2) break;
  }
  chosenP = pick < 0 ? -1 : ldi(ids, pick);
}

/** First index after i (relative) in the list whose value is larger than at i. */
function runEnd(off: i32, len: i32, i: i32): i32 {
  let lo = i + 1;
  let hi = len;
  const v = ldf(SVALS, off + i);
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ldf(SVALS, off + mid) <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

@inline function score(noSlo: bool, ttft: f64, d: i32): f64 {
  return noSlo ? e2e(ttft, d) : -blend(ttft, d);
}

@inline function firstNotG(i: i32): i32 {
  return gUnique ? firstNot(true, gOff, gLen, i, gEx) : firstNot(false, gOff, gLen, i, gEx);
}

/** Lowest e2e latency (noSlo) or largest blended headroom among positives; ties to the lowest (p, d). */
function argBest(noSlo: bool, maxPos: f64): void {
  ensureNext();
  let target = -maxPos;
  if (noSlo) {
    target = Infinity;
    for (let di = 0; di < nDecode; di++) {
      const d = ldi(DLIST, di);
      for (let k = 0; k < 3; k++) {
        const rec = grec(d, k);
        if (load<i32>(rec, GR_POS) + load<i32>(rec, GR_NEG) == 0) continue;
        groupAt(d, k);
        const e = e2e(ldf(SVALS, gOff + firstNotG(0)) + gQ, d);
        if (e < target) target = e;
      }
      if (load<i32>(grec(d, 0), GR_LOCAL) < 0) continue;
      const e = ldf(VL, d) + ldf(VT, d) * reqOsl;
      if (e < target) target = e;
    }
  }
  let bestP = -1;
  let bestD = -1;
  let bestK = 0;
  for (let di = 0; di < nDecode; di++) {
    const d = ldi(DLIST, di);
    for (let k = 0; k < 3; k++) {
      const rec = grec(d, k);
      const count = noSlo ? load<i32>(rec, GR_POS) + load<i32>(rec, GR_NEG) : load<i32>(rec, GR_POS);
      if (count == 0) continue;
      groupAt(d, k);
      const off = gOff;
      const len = gLen;
      const q = gQ;
      const end = noSlo ? len : load<i32>(rec, GR_CPOS);
      let j = firstNotG(0);
      while (j < end && score(noSlo, ldf(SVALS, off + j) + q, d) == target) {
        const p = ldi(SPODS, off + j);
        if (bestP < 0 || p < bestP || (p == bestP && d < bestD)) {
          bestP = p;
          bestD = d;
          bestK = k;
        }
        j = firstNotG(runEnd(off, len, j));
      }
    }
    const local = load<i32>(grec(d, 0), GR_LOCAL);
    if (local >= 0 && (noSlo || local == 1) && score(noSlo, ldf(VL, d), d) == target) {
      if (bestP < 0 || d < bestP || (d == bestP && d < bestD)) {
        bestP = d;
        bestD = d;
        bestK = CLASS_LOCAL;
      }
    }
  }
  chosenP = bestP;
  chosenD = bestD;
  chosenK = bestK;
}

function describe(res: usize): void {
  const d = chosenD;
  const local = chosenK == CLASS_LOCAL;
  stf(res, RES_DECODE, <f64>d);
  stf(res, RES_DECODE_ONLY, local ? 1 : 0);
  stf(res, RES_PREFILL, local ? -1 : <f64>chosenP);
  stf(res, RES_DECODE_TTFT, ldf(VB, d));
  stf(res, RES_TPOT, ldf(VT, d));
  let ttft: f64;
  if (local) {
    stf(res, RES_PREFILL_TTFT, ldf(VLC, d));
    stf(res, RES_TRANSFER, 0);
    ttft = ldf(VL, d);
  } else {
    const c = transferOf(chosenK);
    stf(res, RES_PREFILL_TTFT, ldf(VA, chosenP));
    stf(res, RES_TRANSFER, c);
    ttft = ldf(VA, chosenP) + (ldf(VB, d) + c);
  }
  stf(res, RES_TTFT, ttft);
  stf(res, RES_H_TTFT, hasT ? budgetT - ttft : NaN);
  stf(res, RES_H_TPOT, hasP ? budgetP - ldf(VT, d) : NaN);
  stf(res, RES_BLENDED, hasT || hasP ? blend(ttft, d) : NaN);
}

function fallbacks(res: usize): void {
  const want = fallbackCount;
  if (want == 0) return;
  const local = chosenK == CLASS_LOCAL;
  const cp = chosenP;
  const cd = chosenD;
  const ap = ldf(VA, cp);
  const ht = hasT;
  const hp = hasP;
  const slo = ht || hp;
  const wt = wT;
  const wp = wP;
  const budget = budgetT;
  const bP = budgetP;
  const osl = reqOsl;
  const isTopo = topo;
  const cN = cNode;
  const cR = cRack;
  const cX = cCross;
  const pNode = ldi(NODE, cp);
  const pRack = ldi(RACK, cp);
  const ids = FB_IDS;
  const keys = FB_KEYS;
  let have = 0;
  if (slo && !local) {
    // After a remote pick with an SLO (the common case), every decode pod's key in one SIMD pass over
    // the decode pods' index range, the same expression as below lane by lane; and the ranking in DLIST
    // order, which most keys leave at one comparison with the last one kept (FB_PAIR holds the keys by
    // pod when DLIST is not the range in order).
    const pair = FB_PAIR;
    const vap = f64x2.splat(ap);
    const vbudget = f64x2.splat(budget);
    const vbP = f64x2.splat(bP);
    const vwt = f64x2.splat(wt);
    const vwp = f64x2.splat(wp);
    const vN = f64x2.splat(cN);
    const vR = f64x2.splat(cR);
    const vX = f64x2.splat(cX);
    const vNode = i64x2.splat(<i64>pNode);
    const vRack = i64x2.splat(<i64>pRack);
    const zero = f64x2.splat(0);
    const n = dTo;
    const vb = VB;
    const vt = VT;
    const node = NODE;
    const rack = RACK;
    // When the decode pods fill their index range, DLIST is that range in order: each pair of keys is
    // ranked as it is made, both passed over at once while the ranking is full and neither beats the
    // last one kept (the same tests as the ranking loop below, in the same order).
    const inOrder = nDecode == n - dFrom;
    let floor: f64 = -Infinity;
    let vfloor = f64x2.splat(floor);
    let i = dFrom;
    for (; i + 2 <= n; i += 2) {
      const off = <usize>i << 3;
      let c = vX;
      if (isTopo) {
        const at = <usize>i << 2;
        const sameNode = i64x2.eq(v128.load32x2_s(node + at), vNode);
        const sameRack = i64x2.eq(v128.load32x2_s(rack + at), vRack);
        c = v128.bitselect(vN, v128.bitselect(vR, vX, sameRack), sameNode);
      }
      const ttft = f64x2.add(vap, f64x2.add(v128.load(vb + off), c));
      const th = ht ? f64x2.mul(vwt, f64x2.sub(vbudget, ttft)) : zero;
      const tp = hp ? f64x2.mul(vwp, f64x2.sub(vbP, v128.load(vt + off))) : zero;
      const key = f64x2.add(th, tp);
      if (!inOrder) {
        v128.store(pair + off, key);
        continue;
      }
      if (have == want && !v128.any_true(f64x2.gt(key, vfloor))) continue;
      const k0 = f64x2.extract_lane(key, 0);
      const k1 = f64x2.extract_lane(key, 1);
      if (!((i) == cd || (i) == cp || (have == want && !(k0 > floor)))) {
        have = ranked(ids, keys, have, want, i, k0);
        floor = ldf(keys, want - 1);
        vfloor = f64x2.splat(floor);
      }
      if (!((i + 1) == cd || (i + 1) == cp || (have == want && !(k1 > floor)))) {
        have = ranked(ids, keys, have, want, i + 1, k1);
        floor = ldf(keys, want - 1);
        vfloor = f64x2.splat(floor);
      }
    }
    for (; i < n; i++) {
      const c = !isTopo ? cX : ldi(node, i) == pNode ? cN : ldi(rack, i) == pRack ? cR : cX;
      const ttft = ap + (ldf(vb, i) + c);
      const th = ht ? wt * (budget - ttft) : 0;
      const tp = hp ? wp * (bP - ldf(vt, i)) : 0;
      const key = th + tp;
      if (!inOrder) {
        stf(pair, i, key);
        continue;
      }
      if (!((i) == cd || (i) == cp || (have == want && !(key > floor)))) {
        have = ranked(ids, keys, have, want, i, key);
        floor = ldf(keys, want - 1);
        vfloor = f64x2.splat(floor);
      }
    }
    if (!inOrder) {
      for (let di = 0; di < nDecode; di++) {
        const d = ldi(DLIST, di);
        const key = ldf(pair, d);
        if (d == cd || d == cp || (have == want && !(key > floor))) continue;
        have = ranked(ids, keys, have, want, d, key);
        floor = ldf(keys, want - 1);
      }
    }
  } else for (let di = 0; di < nDecode; di++) {
    const d = ldi(DLIST, di);
    if (d == cd || (!local && d == cp)) continue;
    let ttft: f64;
    if (local) ttft = ldf(VL, d);
    else {
      const c = !isTopo ? cX : ldi(NODE, d) == pNode ? cN : ldi(RACK, d) == pRack ? cR : cX;
      ttft = ap + (ldf(VB, d) + c);
    }
    const t = ldf(VT, d);
    let key: f64;
    if (slo) {
      const th = ht ? wt * (budget - ttft) : 0;
      const tp = hp ? wp * (bP - t) : 0;
      key = th + tp;
    } else key = -(ttft + t * osl);
    have = ranked(ids, keys, have, want, d, key);
  }
  stf(res, RES_FALLBACK_COUNT, <f64>have);
  for (let s = 0; s < have; s++) stf(res, RES_FALLBACKS + s, <f64>ldi(ids, s));
}

/**
 * Pod d with its key into the fallbacks' ranking (keys descending, at most `want`, ties keeping the
 * earlier pod): the number ranked after it. A key below all of a full ranking changes nothing.
 */
@inline function ranked(ids: usize, keys: usize, have: i32, want: i32, d: i32, key: f64): i32 {
  let at = have;
  while (at > 0 && key > ldf(keys, at - 1)) at--;
  if (at >= want) return have;
  const last = have < want ? have : want - 1;
  for (let s = last; s > at; s--) {
    sti(ids, s, ldi(ids, s - 1));
    stf(keys, s, ldf(keys, s - 1));
  }
  sti(ids, at, d);
  stf(keys, at, key);
  return have < want ? have + 1 : have;
}

function account(): void {
  const d = chosenD;
  if (chosenK == CLASS_LOCAL) stf(WDQ, d, ldf(WDQ, d) + (ldf(VLC, d) + ldf(WPR, d)));
  else {
    // The prefill curve may be a remote TTFT, queue included; the queue grows by the compute alone.
    const p = chosenP;
    const lo = ldf(rowAt(PLF, prefillSeg), p);
    const hi = ldf(rowAt(PLF, prefillSeg + (nGrid > 1 ? 1 : 0)), p);
    stf(WPQ, p, ldf(WPQ, p) + max<f64>(lo + prefillFrac * (hi - lo), 0));
    stf(WDQ, d, ldf(WDQ, d) + ldf(WPR, d));
  }
  stf(WTL, d, ldf(WTL, d) + (ldf(TPR, d) + ldf(TPT, d) * (reqIsl + reqOsl)));
}
