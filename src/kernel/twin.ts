// The TypeScript twin of the WebAssembly kernel: the selection of SPEC.md §2 over one pool snapshot,
// written plainly. It returns bit-identical results to assembly/index.ts for the same seed and is the
// fallback when WebAssembly is unavailable. Every floating-point expression keeps the kernel's operand
// order; change both together.
//
// The algorithm in brief. Per request, every pod gets its predictions (A: prefill TTFT on p, B: decode
// TTFT on d, T: TPOT on d, L: local TTFT on d). A remote pair (p, d) of link class k has
// ttft = A[p] + (B[d] + c_k), so for a fixed (d, k) the positive prefill pods are a prefix of the pods
// sorted by A. Pairs are handled in groups (d, k) — k in node, rack, cross, local — whose counts,
// weight sums and extreme members come from sorted lists, prefix sums and inclusion–exclusion
// (cross = cluster list minus d's rack list, rack = rack list minus d's node list, node = node list
// minus d itself); a group's sum over all its members is a difference of sums taken in pod order.
// A draw picks a group by its total weight, then a pair inside it by a scan. The kernel reaches the
// same groups without sorting when the SLO line cuts none of them (assembly/index.ts, uncutGroups).

import { RequestError, SnapshotVersionError } from "../errors.js";
import { denseLinks, type DenseLinks } from "./links.js";
import { Splitmix32 } from "./prng.js";
import type { OptimizerParams, Outcome, PickRequest, PickResult, PoolSnapshot, TopologyParams } from "./types.js";
import { ROLE_DECODE, ROLE_ELIGIBLE, ROLE_PREFILL } from "./types.js";
import { paramsProblem, requestProblem, validateLoads, validateSnapshot } from "./validate.js";

export const CLASS_NODE = 0;
export const CLASS_RACK = 1;
export const CLASS_CROSS = 2;
export const CLASS_LOCAL = 3;

/** One request's predictions per pod (arrays indexed by pod). */
export interface PodValues {
  /** Prefill TTFT on p: queue + prefill time. */
  a: Float64Array;
  /** Prefill compute alone on p (the load a pick adds to p's queue; not the remote TTFT). */
  prefillLoad: Float64Array;
  /** Decode TTFT on d. */
  b: Float64Array;
  /** TPOT on d. */
  t: Float64Array;
  /** Local prefill compute on d, and the local pair's TTFT B + local. */
  localCompute: Float64Array;
  l: Float64Array;
  /** Transfer time by link class (node, rack, cross). */
  transfer: [number, number, number];
  uncached: number;
}

/** In-flight load the batch has added so far, on top of the snapshot's. */
export interface Loads {
  prefillQueueMs: Float64Array;
  decodeQueueMs: Float64Array;
  tpotLoadMs: Float64Array;
}

/** Position of x on the grid: segment index and fraction (0 below the grid, > 1 beyond it). */
export function gridPosition(grid: Float64Array, x: number): { seg: number; frac: number } {
  const g = grid.length;
  if (g === 1 || x <= grid[0]) return { seg: 0, frac: 0 };
  let seg = 0;
  while (seg < g - 2 && grid[seg + 1] <= x) seg++;
  return { seg, frac: (x - grid[seg]) / (grid[seg + 1] - grid[seg]) };
}

/** A curve's value for pod i at a grid position, clamped at 0 (as the kernel interpolates). */
export function interpolate(curve: Float64Array, n: number, g: number, pos: { seg: number; frac: number }, i: number): number {
  const lo = curve[pos.seg * n + i];
  const hi = curve[(g > 1 ? pos.seg + 1 : pos.seg) * n + i];
  return Math.max(lo + pos.frac * (hi - lo), 0);
}

/** The predictor stage: per-request values of every pod. */
export function podValues(snap: PoolSnapshot, loads: Loads, req: PickRequest, topology: TopologyParams, overheadMs: number): PodValues {
  const n = snap.pods;
  const g = snap.gridTokens.length;
  const uncached = req.inputTokens * (1 - req.prefixHit);
  const prefillPos = gridPosition(snap.gridTokens, uncached);
  const decodePos = gridPosition(snap.gridTokens, req.inputTokens);
  const v: PodValues = {
    a: new Float64Array(n),
    prefillLoad: new Float64Array(n),
    b: new Float64Array(n),
    t: new Float64Array(n),
    localCompute: new Float64Array(n),
    l: new Float64Array(n),
    transfer: [0, 0, 0],
    uncached,
  };
  for (let i = 0; i < n; i++) {
    v.a[i] = loads.prefillQueueMs[i] + interpolate(snap.prefillMs, n, g, prefillPos, i);
    v.prefillLoad[i] = interpolate(snap.prefillLoadMs, n, g, prefillPos, i);
    v.b[i] = loads.decodeQueueMs[i] + interpolate(snap.decodeWaitMs, n, g, decodePos, i);
    v.t[i] = loads.tpotLoadMs[i] + interpolate(snap.tpotMs, n, g, decodePos, i);
    const lc = interpolate(snap.localPrefillMs, n, g, prefillPos, i);
    v.localCompute[i] = lc;
    v.l[i] = v.b[i] + lc;
  }
  const bytes = uncached * topology.kvBytesPerToken;
  v.transfer = [
    overheadMs + bytes / (topology.bandwidthGBps.node * 1e6),
    overheadMs + bytes / (topology.bandwidthGBps.rack * 1e6),
    overheadMs + bytes / (topology.bandwidthGBps.cross * 1e6),
  ];
  return v;
}

/** A sorted run of prefill pods (by A, then index) with prefix sums and skip links over a grouping. */
class Seg {
  pods: number[] = [];
  vals: number[] = [];
  pre: number[] = [0];
  grp: number[] = [];
  /** First index after j whose group differs from grp[j] (or length); last such index before j (or -1). */
  nx: number[] = [];
  pv: number[] = [];

  get len(): number {
    return this.pods.length;
  }

  push(pod: number, val: number, group: number): void {
    this.pods.push(pod);
    this.vals.push(val);
    this.pre.push(this.pre[this.pre.length - 1] + val);
    this.grp.push(group);
  }

  link(): void {
    const len = this.len;
    this.nx = new Array<number>(len);
    this.pv = new Array<number>(len);
    for (let j = len - 1; j >= 0; j--) {
      this.nx[j] = j + 1 >= len || this.grp[j + 1] !== this.grp[j] ? j + 1 : this.nx[j + 1];
    }
    for (let j = 0; j < len; j++) {
      this.pv[j] = j === 0 || this.grp[j - 1] !== this.grp[j] ? j - 1 : this.pv[j - 1];
    }
  }

  /** First index >= i whose group is not g; len when none. */
  firstNot(i: number, g: number): number {
    return i < this.len && this.grp[i] === g ? this.nx[i] : i;
  }

  /** Last index <= i whose group is not g; -1 when none. */
  lastNot(i: number, g: number): number {
    return i >= 0 && this.grp[i] === g ? this.pv[i] : i;
  }

  /** First index after i whose value is larger than vals[i]. */
  runEnd(i: number): number {
    let lo = i + 1;
    let hi = this.len;
    const v = this.vals[i];
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.vals[mid] <= v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

const EMPTY = new Seg();

/** The remote pairs of one decode pod and one link class. */
interface Group {
  d: number;
  k: number;
  seg: Seg;
  exLabel: number;
  /** Positive members lie at seg indices below cPos. */
  cPos: number;
  q: number;
  pos: number;
  neg: number;
  total: number;
  sumPos: number;
  sumNeg: number;
  firstPos: number;
  lastPos: number;
  firstNeg: number;
  lastNeg: number;
  firstAll: number;
}

/** Everything one request's selection needs. */
class RequestFrame {
  readonly hasT: boolean;
  readonly hasP: boolean;
  readonly budgetT: number;
  readonly budgetP: number;
  readonly groups: Group[] = [];
  /** Per decode pod: does the local pair exist, and is it positive. */
  readonly local = new Map<number, boolean>();

  constructor(
    readonly twin: TwinKernel,
    readonly req: PickRequest,
    readonly v: PodValues,
  ) {
    const p = twin.params;
    this.hasT = req.sloTtftMs !== undefined;
    this.hasP = req.sloTpotMs !== undefined;
    this.budgetT = this.hasT ? (req.sloTtftMs as number) * p.sloBufferFactor : 0;
    this.budgetP = this.hasP ? (req.sloTpotMs as number) * p.sloBufferFactor : 0;
  }

  blend(ttft: number, d: number): number {
    const p = this.twin.params;
    const th = this.hasT ? p.ttftWeight * (this.budgetT - ttft) : 0;
    const tp = this.hasP ? p.tpotWeight * (this.budgetP - this.v.t[d]) : 0;
    return th + tp;
  }

  e2e(ttft: number, d: number): number {
    return ttft + this.v.t[d] * this.req.outputTokens;
  }

  tpotOk(d: number): boolean {
    return !this.hasP || this.v.t[d] <= this.budgetP;
  }

  localPositive(d: number): boolean {
    return this.tpotOk(d) && (!this.hasT || this.v.l[d] <= this.budgetT);
  }

  memberOf(g: Group, p: number): boolean {
    if (p === g.d) return false;
    if (!this.twin.topologyMode) return true;
    const { rackOf, nodeOf } = this.twin.links;
    if (g.k === CLASS_NODE) return nodeOf[p] === nodeOf[g.d];
    if (g.k === CLASS_RACK) return rackOf[p] === rackOf[g.d] && nodeOf[p] !== nodeOf[g.d];
    return rackOf[p] !== rackOf[g.d];
  }

  positiveIn(g: Group, p: number): boolean {
    return this.tpotOk(g.d) && (!this.hasT || this.v.a[p] + g.q <= this.budgetT);
  }
}

export class TwinKernel {
  params!: OptimizerParams;
  topology!: TopologyParams;
  snap: PoolSnapshot | null = null;
  links!: DenseLinks;
  topologyMode = false;
  private prefillPods: number[] = [];
  private decodePods: number[] = [];
  private bothPods = 0;

  constructor(params: OptimizerParams, topology: TopologyParams) {
    this.setParams(params, topology);
  }

  setParams(params: OptimizerParams, topology: TopologyParams): void {
    const problem = paramsProblem(params, topology);
    if (problem) throw new RequestError(problem);
    this.params = { ...params };
    this.topology = { kvBytesPerToken: topology.kvBytesPerToken, bandwidthGBps: { ...topology.bandwidthGBps } };
    this.updateMode();
  }

  loadSnapshot(snap: PoolSnapshot): void {
    validateSnapshot(snap);
    this.snap = snap;
    this.links = denseLinks(snap);
    this.prefillPods = [];
    this.decodePods = [];
    this.bothPods = 0;
    for (let i = 0; i < snap.pods; i++) {
      const r = snap.roles[i];
      if (!(r & ROLE_ELIGIBLE)) continue;
      if (r & ROLE_PREFILL) this.prefillPods.push(i);
      if (r & ROLE_DECODE) this.decodePods.push(i);
      if (r & ROLE_PREFILL && r & ROLE_DECODE) this.bothPods++;
    }
    this.updateMode();
  }

  /** Replaces only the in-flight loads of the snapshot already loaded (same version and pods). */
  updateLoads(snap: PoolSnapshot): void {
    const held = this.snap;
    if (held === null || snap.version !== held.version || snap.pods !== held.pods) {
      throw new SnapshotVersionError(held?.version ?? -1, snap.version);
    }
    validateLoads(snap);
    this.snap = { ...held, prefillQueueMs: snap.prefillQueueMs, decodeQueueMs: snap.decodeQueueMs, tpotLoadMs: snap.tpotLoadMs };
  }

  private updateMode(): void {
    this.topologyMode = this.snap !== null && this.topology.kvBytesPerToken > 0 && this.links.hasLinks;
  }

  /** Picks for a batch in order; each pick's load is seen by the picks after it. */
  pick(requests: PickRequest[], expectedVersion?: number): PickResult[] {
    const snap = this.snap;
    if (!snap) throw new RequestError("no snapshot loaded");
    if (expectedVersion !== undefined && expectedVersion !== snap.version) {
      throw new SnapshotVersionError(snap.version, expectedVersion);
    }
    const loads: Loads = {
      prefillQueueMs: snap.prefillQueueMs.slice(),
      decodeQueueMs: snap.decodeQueueMs.slice(),
      tpotLoadMs: snap.tpotLoadMs.slice(),
    };
    return requests.map((req) => this.pickOne(snap, loads, req));
  }

  private pickOne(snap: PoolSnapshot, loads: Loads, req: PickRequest): PickResult {
    const result = emptyResult(snap.version);
    if (requestProblem(req) !== null) {
      result.outcome = "invalid_request";
      return result;
    }
    const v = podValues(snap, loads, req, this.topology, this.params.transferOverheadMs);
    const remotePairs = this.prefillPods.length * this.decodePods.length - this.bothPods;
    const mode = this.params.localPrefill;
    const localAllowed =
      this.decodePods.length > 0 &&
      (remotePairs === 0 || mode === "compete" || (mode === "threshold" && v.uncached < this.params.pdThreshold));
    const pairs = remotePairs + (localAllowed ? this.decodePods.length : 0);
    result.pairs = pairs;
    if (pairs === 0) {
      result.outcome = "no_candidates";
      return result;
    }
    const f = new RequestFrame(this, req, v);
    this.buildGroups(f, localAllowed);
    const chosen = this.select(f, result);
    if (chosen === null) return result;
    this.describe(f, chosen, result);
    if (req.fallbacks !== false) this.fallbacks(f, chosen, result);
    this.account(snap, loads, f, chosen);
    return result;
  }

  /** Sorted lists, threshold counts and the per-group summaries. */
  private buildGroups(f: RequestFrame, localAllowed: boolean): void {
    const v = f.v;
    const { rackOf, nodeOf } = this.links;
    const topo = this.topologyMode;
    const byA = [...this.prefillPods].sort((x, y) => v.a[x] - v.a[y] || x - y);
    const byB = [...this.decodePods].sort((x, y) => v.b[x] - v.b[y] || x - y);

    const top = new Seg();
    const rackSegs = new Map<number, Seg>();
    const nodeSegs = new Map<number, Seg>();
    for (const p of byA) {
      top.push(p, v.a[p], topo ? rackOf[p] : p);
      if (!topo) continue;
      getSeg(rackSegs, rackOf[p]).push(p, v.a[p], nodeOf[p]);
      getSeg(nodeSegs, nodeOf[p]).push(p, v.a[p], p);
    }
    top.link();
    for (const s of rackSegs.values()) s.link();
    for (const s of nodeSegs.values()) s.link();

    const n = this.snap!.pods;
    const [cNode, cRack, cCross] = v.transfer;
    const cnt0 = new Int32Array(n);
    const cnt1x = new Int32Array(n);
    const cnt1r = new Int32Array(n);
    const cnt2r = new Int32Array(n);
    const cnt2n = new Int32Array(n);
    if (f.hasT) {
      sweep(top, byB, v.b, cCross, f.budgetT, cnt0);
      if (topo) {
        const racksD = new Map<number, number[]>();
        const nodesD = new Map<number, number[]>();
        for (const d of byB) {
          getList(racksD, rackOf[d]).push(d);
          getList(nodesD, nodeOf[d]).push(d);
        }
        for (const [r, ds] of racksD) {
          const s = rackSegs.get(r) ?? EMPTY;
          sweep(s, ds, v.b, cCross, f.budgetT, cnt1x);
          sweep(s, ds, v.b, cRack, f.budgetT, cnt1r);
        }
        for (const [nd, ds] of nodesD) {
          const s = nodeSegs.get(nd) ?? EMPTY;
          sweep(s, ds, v.b, cRack, f.budgetT, cnt2r);
          sweep(s, ds, v.b, cNode, f.budgetT, cnt2n);
        }
      }
    }

    // Sums of A in pod order, over every prefill pod and over each rack's and each node's: a group's sum
    // over all its members is a difference of two of them. Only a cut group's positive part comes from
    // the sorted lists' prefix sums.
    let allSum = 0;
    const rackSum = new Float64Array(n);
    const nodeSum = new Float64Array(n);
    for (const p of this.prefillPods) {
      allSum += v.a[p];
      if (!topo) continue;
      rackSum[rackOf[p]] += v.a[p];
      nodeSum[nodeOf[p]] += v.a[p];
    }

    const isPrefill = (d: number): boolean => (this.snap!.roles[d] & ROLE_PREFILL) !== 0;
    for (const d of this.decodePods) {
      const selfIn = isPrefill(d);
      if (topo) {
        const rs = rackSegs.get(rackOf[d]) ?? EMPTY;
        const ns = nodeSegs.get(nodeOf[d]) ?? EMPTY;
        const qNode = v.b[d] + cNode;
        const selfPos = selfIn && (!f.hasT || v.a[d] + qNode <= f.budgetT);
        const nSum = nodeSum[nodeOf[d]];
        const rSum = rackSum[rackOf[d]];
        f.groups.push(
          makeGroup(f, d, CLASS_NODE, ns, d, cnt2n[d], qNode, selfPos ? 1 : 0, selfPos ? v.a[d] : 0, selfIn ? 1 : 0, nSum - (selfIn ? v.a[d] : 0)),
          makeGroup(f, d, CLASS_RACK, rs, nodeOf[d], cnt1r[d], v.b[d] + cRack, cnt2r[d], ns.pre[cnt2r[d]], ns.len, rSum - nSum),
          makeGroup(f, d, CLASS_CROSS, top, rackOf[d], cnt0[d], v.b[d] + cCross, cnt1x[d], rs.pre[cnt1x[d]], rs.len, allSum - rSum),
        );
      } else {
        const q = v.b[d] + cCross;
        const selfPos = selfIn && (!f.hasT || v.a[d] + q <= f.budgetT);
        f.groups.push(
          makeGroup(f, d, CLASS_NODE, EMPTY, d, 0, 0, 0, 0, 0, 0),
          makeGroup(f, d, CLASS_RACK, EMPTY, d, 0, 0, 0, 0, 0, 0),
          makeGroup(f, d, CLASS_CROSS, top, d, cnt0[d], q, selfPos ? 1 : 0, selfPos ? v.a[d] : 0, selfIn ? 1 : 0, allSum - (selfIn ? v.a[d] : 0)),
        );
      }
      if (localAllowed) f.local.set(d, f.localPositive(d));
    }
  }

  /** Runs steps 1–5 of SPEC.md §2. Returns the chosen pair, or null with the outcome set. */
  private select(f: RequestFrame, result: PickResult): Chosen | null {
    const { params } = this;
    if (!f.hasT && !f.hasP) {
      result.outcome = "no_slo";
      return this.argBest(f, true);
    }
    let posPairs = 0;
    let negPairs = 0;
    let minPos = Infinity;
    let maxPos = -Infinity;
    let minNeg = Infinity;
    let gi = 0;
    for (const d of this.decodePods) {
      for (let k = 0; k < 3; k++) {
        const g = f.groups[gi++];
        posPairs += g.pos;
        negPairs += g.neg;
        if (g.pos > 0) {
          const lo = f.blend(g.seg.vals[g.lastPos] + g.q, d);
          const hi = f.blend(g.seg.vals[g.firstPos] + g.q, d);
          if (lo < minPos) minPos = lo;
          if (hi > maxPos) maxPos = hi;
        }
        if (g.neg > 0) {
          const lo = f.blend(g.seg.vals[g.lastNeg] + g.q, d);
          if (lo < minNeg) minNeg = lo;
        }
      }
      const positive = f.local.get(d);
      if (positive === undefined) continue;
      const b = f.blend(f.v.l[d], d);
      if (positive) {
        posPairs++;
        if (b < minPos) minPos = b;
        if (b > maxPos) maxPos = b;
      } else {
        negPairs++;
        if (b < minNeg) minNeg = b;
      }
    }
    result.positivePairs = posPairs;
    const sheddable = f.req.priority < 0;
    if (posPairs === 0 && sheddable && params.shedSheddable) {
      result.outcome = "shed";
      return null;
    }
    const rng = new Splitmix32(f.req.seed);
    const u1 = rng.next();
    if (!sheddable && u1 < params.negativeHeadroomProb && negPairs > 0) {
      result.outcome = "explore";
      return this.draw(f, rng, "explore", 0);
    }
    if (posPairs > 0) {
      result.outcome = "positive_headroom";
      if (params.headroomStrategy === "best") return this.argBest(f, false, maxPos);
      return params.headroomStrategy === "most" ? this.draw(f, rng, "most", minPos) : this.draw(f, rng, "least", maxPos);
    }
    result.outcome = "negative_headroom";
    return this.draw(f, rng, "negative", minNeg);
  }

  /**
   * A weighted draw: a group by its total weight, then a member by a scan in pod order.
   * most: blended - min + 1 over positives; least: max - blended + 1 over positives;
   * negative: blended - min + 1 over negatives; explore: 1 per negative pair.
   */
  private draw(f: RequestFrame, rng: Splitmix32, kind: DrawKind, ref: number): Chosen {
    const weights: number[] = [];
    const slope = f.hasT ? this.params.ttftWeight : 0;
    let total = 0;
    let gi = 0;
    for (const d of this.decodePods) {
      for (let k = 0; k < 3; k++) {
        const g = f.groups[gi++];
        let w = 0;
        if (kind === "explore") w = g.neg;
        else if (kind === "negative") {
          if (g.neg > 0) w = g.neg * (f.blend(g.q, d) - ref + 1) - slope * g.sumNeg;
        } else if (g.pos > 0) {
          // A member's blended is about blend(q) - slope * A, so a group's weight needs only its count and sum of A.
          w = kind === "most" ? g.pos * (f.blend(g.q, d) - ref + 1) - slope * g.sumPos : g.pos * (ref - f.blend(g.q, d) + 1) + slope * g.sumPos;
        }
        weights.push(w);
        total += w;
      }
      const positive = f.local.get(d);
      let w = 0;
      if (positive !== undefined) {
        const wanted = kind === "most" || kind === "least" ? positive : !positive;
        if (wanted) w = kind === "explore" ? 1 : pairWeight(kind, f.blend(f.v.l[d], d), ref);
      }
      weights.push(w);
      total += w;
    }
    const target = rng.next() * total;
    let acc = 0;
    let chosen = -1;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i] <= 0) continue;
      acc += weights[i];
      chosen = i;
      if (target < acc) break;
    }
    const d = this.decodePods[(chosen / 4) | 0];
    const k = chosen % 4;
    if (k === CLASS_LOCAL) return { p: d, d, k };
    const g = f.groups[((chosen / 4) | 0) * 3 + k];
    const wantPositive = kind === "most" || kind === "least";
    const memberWeight = (p: number): number => {
      if (!f.memberOf(g, p) || f.positiveIn(g, p) !== wantPositive) return 0;
      return kind === "explore" ? 1 : pairWeight(kind, f.blend(f.v.a[p] + g.q, d), ref);
    };
    let sum = 0;
    for (const p of this.prefillPods) sum += memberWeight(p);
    const inner = rng.next() * sum;
    let acc2 = 0;
    let pick = -1;
    for (const p of this.prefillPods) {
      const w = memberWeight(p);
      if (w <= 0) continue;
      acc2 += w;
      pick = p;
      if (inner < acc2) break;
    }
    return { p: pick, d, k };
  }

  /**
   * The deterministic choices: with `noSlo`, the lowest predicted end-to-end latency; otherwise the
   * positive pair of largest blended headroom (`maxPos`). Ties go to the lowest (p, d).
   */
  private argBest(f: RequestFrame, noSlo: boolean, maxPos = 0): Chosen {
    const osl = f.req.outputTokens;
    // Both criteria are monotone in A, so each group's best member is its first (smallest A) one.
    const score = (ttft: number, d: number): number => (noSlo ? f.e2e(ttft, d) : -f.blend(ttft, d));
    let target = -maxPos;
    if (noSlo) {
      target = Infinity;
      let gi = 0;
      for (const d of this.decodePods) {
        for (let k = 0; k < 3; k++) {
          const g = f.groups[gi++];
          if (g.total === 0) continue;
          const e = f.e2e(g.seg.vals[g.firstAll] + g.q, d);
          if (e < target) target = e;
        }
        if (!f.local.has(d)) continue;
        const e = f.v.l[d] + f.v.t[d] * osl;
        if (e < target) target = e;
      }
    }
    let best: Chosen | null = null;
    const better = (p: number, d: number): boolean => best === null || p < best.p || (p === best.p && d < best.d);
    let gi = 0;
    for (const d of this.decodePods) {
      for (let k = 0; k < 3; k++) {
        const g = f.groups[gi++];
        const start = noSlo ? g.firstAll : g.firstPos;
        const count = noSlo ? g.total : g.pos;
        if (count === 0) continue;
        const end = noSlo ? g.seg.len : g.cPos;
        let j = start;
        while (j < end && score(g.seg.vals[j] + g.q, d) === target) {
          // Within a run of equal A the list is in pod order: its first member is its lowest pod.
          const p = g.seg.pods[j];
          if (better(p, d)) best = { p, d, k };
          j = g.seg.firstNot(g.seg.runEnd(j), g.exLabel);
        }
      }
      const positive = f.local.get(d);
      if (positive !== undefined && (noSlo || positive) && score(f.v.l[d], d) === target && better(d, d)) {
        best = { p: d, d, k: CLASS_LOCAL };
      }
    }
    return best!;
  }

  private describe(f: RequestFrame, c: Chosen, r: PickResult): void {
    const v = f.v;
    r.decode = c.d;
    r.decodeOnly = c.k === CLASS_LOCAL;
    r.prefill = r.decodeOnly ? -1 : c.p;
    r.decodeTtftMs = v.b[c.d];
    r.tpotMs = v.t[c.d];
    if (r.decodeOnly) {
      r.prefillTtftMs = v.localCompute[c.d];
      r.transferMs = 0;
      r.ttftMs = v.l[c.d];
    } else {
      r.prefillTtftMs = v.a[c.p];
      r.transferMs = v.transfer[c.k];
      r.ttftMs = v.a[c.p] + (v.b[c.d] + v.transfer[c.k]);
    }
    r.headroomTtftMs = f.hasT ? f.budgetT - r.ttftMs : NaN;
    r.headroomTpotMs = f.hasP ? f.budgetP - r.tpotMs : NaN;
    r.blended = f.hasT || f.hasP ? f.blend(r.ttftMs, c.d) : NaN;
  }

  /** Other decode pods ranked by their pair with the chosen prefill pod (their local pair after a local pick). */
  private fallbacks(f: RequestFrame, c: Chosen, r: PickResult): void {
    const want = this.params.fallbacks;
    if (want === 0) return;
    const v = f.v;
    const local = c.k === CLASS_LOCAL;
    const ids: number[] = [];
    const keys: number[] = [];
    for (const d of this.decodePods) {
      if (d === c.d || (!local && d === c.p)) continue;
      const ttft = local ? v.l[d] : v.a[c.p] + (v.b[d] + v.transfer[this.linkClass(c.p, d)]);
      const key = f.hasT || f.hasP ? f.blend(ttft, d) : -f.e2e(ttft, d);
      let at = ids.length;
      while (at > 0 && key > keys[at - 1]) at--;
      if (at >= want) continue;
      ids.splice(at, 0, d);
      keys.splice(at, 0, key);
      if (ids.length > want) {
        ids.pop();
        keys.pop();
      }
    }
    r.fallbacks = ids;
  }

  linkClass(p: number, d: number): number {
    if (!this.topologyMode) return CLASS_CROSS;
    const { rackOf, nodeOf } = this.links;
    if (nodeOf[p] === nodeOf[d]) return CLASS_NODE;
    return rackOf[p] === rackOf[d] ? CLASS_RACK : CLASS_CROSS;
  }

  /** In-batch accounting: the pick's own load joins its pods for the rest of the batch. */
  private account(snap: PoolSnapshot, loads: Loads, f: RequestFrame, c: Chosen): void {
    const v = f.v;
    const d = c.d;
    if (c.k === CLASS_LOCAL) loads.decodeQueueMs[d] += v.localCompute[d] + snap.waitPerRequestMs[d];
    else {
      loads.prefillQueueMs[c.p] += v.prefillLoad[c.p];
      loads.decodeQueueMs[d] += snap.waitPerRequestMs[d];
    }
    loads.tpotLoadMs[d] += snap.tpotPerRequestMs[d] + snap.tpotPerTokenMs[d] * (f.req.inputTokens + f.req.outputTokens);
  }
}

type DrawKind = "most" | "least" | "negative" | "explore";

interface Chosen {
  p: number;
  d: number;
  k: number;
}

function pairWeight(kind: DrawKind, blended: number, ref: number): number {
  if (kind === "least") return ref - blended + 1;
  return blended - ref + 1;
}

function makeGroup(
  f: RequestFrame,
  d: number,
  k: number,
  seg: Seg,
  exLabel: number,
  count: number,
  q: number,
  exCntPos: number,
  exSumPos: number,
  exCntAll: number,
  sumAll: number,
): Group {
  const total = seg.len - exCntAll;
  let cPos: number;
  let pos: number;
  let sumPos: number;
  if (!f.tpotOk(d)) {
    cPos = 0;
    pos = 0;
    sumPos = 0;
  } else if (!f.hasT) {
    cPos = seg.len;
    pos = total;
    sumPos = sumAll;
  } else {
    cPos = count;
    pos = count - exCntPos;
    // All positive: the sum over all members, whatever the order the prefix would add them in.
    sumPos = pos === total ? sumAll : seg.pre[count] - exSumPos;
  }
  const neg = total - pos;
  return {
    d,
    k,
    seg,
    exLabel,
    cPos,
    q,
    pos,
    neg,
    total,
    sumPos,
    sumNeg: sumAll - sumPos,
    firstAll: seg.firstNot(0, exLabel),
    firstPos: pos > 0 ? seg.firstNot(0, exLabel) : -1,
    lastPos: pos > 0 ? seg.lastNot(cPos - 1, exLabel) : -1,
    firstNeg: neg > 0 ? seg.firstNot(cPos, exLabel) : -1,
    lastNeg: neg > 0 ? seg.lastNot(seg.len - 1, exLabel) : -1,
  };
}

/** For decode pods in ascending B: how many of seg's prefill pods satisfy A + (B + c) <= budget. */
function sweep(seg: Seg, decodes: number[], b: Float64Array, c: number, budget: number, out: Int32Array): void {
  let ptr = seg.len;
  for (const d of decodes) {
    const q = b[d] + c;
    while (ptr > 0 && !(seg.vals[ptr - 1] + q <= budget)) ptr--;
    out[d] = ptr;
  }
}

function getSeg(map: Map<number, Seg>, key: number): Seg {
  let s = map.get(key);
  if (!s) map.set(key, (s = new Seg()));
  return s;
}

function getList(map: Map<number, number[]>, key: number): number[] {
  let s = map.get(key);
  if (!s) map.set(key, (s = []));
  return s;
}

function emptyResult(version: number): PickResult {
  return {
    outcome: "invalid_request" as Outcome,
    prefill: -1,
    decode: -1,
    decodeOnly: false,
    fallbacks: [],
    prefillTtftMs: NaN,
    decodeTtftMs: NaN,
    transferMs: NaN,
    ttftMs: NaN,
    tpotMs: NaN,
    headroomTtftMs: NaN,
    headroomTpotMs: NaN,
    blended: NaN,
    pairs: 0,
    positivePairs: 0,
    version,
  };
}
