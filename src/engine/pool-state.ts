// One pool's picture for the kernel: at every refresh, the pool's pods with their live state and
// in-flight load become predictor features, the predictors fill the per-pod curves on the pool's grid
// (the configured ISL points plus knots at the pods' KV capacities), and the result is published as a
// versioned snapshot (a plain copy for the main thread, a shared one for workers). Between refreshes
// each pick's own load is added in place through the pods' marginal effects.

import type { Clock } from "../clock.js";
import { gridPosition, interpolate } from "../kernel/twin.js";
import { SharedSnapshotWriter } from "../kernel/shared-snapshot.js";
import type { PickRequest, PickResult, PoolSnapshot } from "../kernel/types.js";
import { ROLE_DECODE, ROLE_ELIGIBLE, ROLE_PREFILL } from "../kernel/types.js";
import { MAX_GRID_POINTS, validateSnapshot } from "../kernel/validate.js";
import type { Logger } from "../log.js";
import { OncePerCause } from "../log.js";
import type { InflightLoad, NewInflightPick, PredictedTimes } from "../pods/inflight.js";
import { failOpen, type PodRegistry, type PodState, type PodStatus } from "../pods/registry.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import type { PodFeatures, PoolPredictions, Predictor, Quantity } from "../predictors/types.js";
import { allocatePredictions, QUANTITIES } from "../predictors/types.js";

export function predictedOf(r: PickResult): PredictedTimes {
  return { prefillTtftMs: r.prefillTtftMs, decodeTtftMs: r.decodeTtftMs, transferMs: r.transferMs, ttftMs: r.ttftMs, tpotMs: r.tpotMs };
}

/** A kernel as PoolState feeds it: the whole snapshot on a new version, only the loads otherwise. */
export interface SnapshotKernel {
  loadSnapshot(snap: PoolSnapshot): void;
  updateLoads(snap: PoolSnapshot): void;
}

/** What a kernel holds of a pool; start at `{ version: -1, loadSeq: -1 }`. */
export interface KernelHold {
  version: number;
  loadSeq: number;
}

/** Snapshot versions whose pod order stays known, so a late worker result still maps to addresses. */
export const VERSIONS_KEPT = 8;

/** Weight of one pick in the pool's running means of ISL and OSL. */
const MEAN_ALPHA = 0.01;

export interface PoolStateOptions {
  name: string;
  /** TP of pods that do not say. */
  tp: number;
  gpuMemoryUtilization: number;
  expected: { isl: number; osl: number };
  /** The configured ISL grid; the snapshot's adds knots at KV capacities below its last point (gridWithCapacities). */
  gridTokens: Float64Array;
  defaultProfile: string;
  profiles: ReadonlyMap<string, LatencyProfile>;
  predictors: Readonly<Record<Quantity, Predictor>>;
  clock: Clock;
  logger: Logger;
}

/** What a published version knows about its pods. */
export interface PublishedPods {
  version: number;
  addresses: readonly string[];
  features: readonly PodFeatures[];
  statuses: readonly PodStatus[];
}

export class PoolState {
  private version = 0;
  private current: PoolSnapshot | null = null;
  private readonly published: PublishedPods[] = [];
  /** The latest published pods' indices by address, built when a result of an older version needs them. */
  private latestIndex: { version: number; byAddress: Map<string, number> } | null = null;
  readonly shared = new SharedSnapshotWriter();
  private meanIsl: number;
  private meanOsl: number;
  private readonly nodeIds = new Map<string, number>();
  private readonly rackIds = new Map<string, number>();
  private readonly problems: OncePerCause;
  /** Wall time the last refresh took on this thread, ms. */
  lastRefreshMs = 0;
  /** Moves whenever the snapshot's numbers do: each refresh and each pick's load (kernels reload on a change). */
  loadSeq = 0;
  /** Settles when the fetches the last refresh started (remote predictors) are done; never rejects. */
  lastFetch: Promise<void> = Promise.resolve();

  constructor(
    readonly options: PoolStateOptions,
    private readonly registry: PodRegistry,
    private readonly inflight: InflightLoad<PodFeatures>,
  ) {
    this.meanIsl = options.expected.isl;
    this.meanOsl = options.expected.osl;
    this.problems = new OncePerCause(options.logger);
  }

  get name(): string {
    return this.options.name;
  }

  /** The latest published snapshot (its load arrays include picks since). */
  get snapshot(): PoolSnapshot | null {
    return this.current;
  }

  /** Brings a kernel up to the pool's numbers, copying the curves only when the version changed. */
  syncKernel(kernel: SnapshotKernel, held: KernelHold): void {
    const snap = this.current;
    if (snap === null || held.loadSeq === this.loadSeq) return;
    if (held.version === snap.version) kernel.updateLoads(snap);
    else kernel.loadSnapshot(snap);
    held.version = snap.version;
    held.loadSeq = this.loadSeq;
  }

  /** Pods of a still-known version, or undefined when it is too old. Newest first: picks name the latest. */
  podsAt(version: number): PublishedPods | undefined {
    for (let i = this.published.length - 1; i >= 0; i--) if (this.published[i].version === version) return this.published[i];
    return undefined;
  }

  get latestPods(): PublishedPods | undefined {
    return this.published[this.published.length - 1];
  }

  get means(): { isl: number; osl: number } {
    return { isl: this.meanIsl, osl: this.meanOsl };
  }

  /** Features of each pod now, in snapshot order. */
  features(pods: readonly PodState[]): PodFeatures[] {
    return pods.map((pod) => this.featuresOf(pod));
  }

  /** Rebuilds and publishes the snapshot; starts the asynchronous predictors' next fetch. */
  refresh(): PoolSnapshot {
    const started = performance.now();
    const pods = this.registry.podsOf(this.options.name);
    const features = this.features(pods);
    const scraped = pods.map((pod) => this.registry.status(pod));
    const revived = failOpen(pods, scraped);
    const statuses = revived ?? scraped;
    if (revived !== null) {
      this.problems.fail("fail-open", "all_pods_unscraped", "every scraped pod of the pool failed its scrapes or went stale, and none that can decode is a candidate; picks use their last metrics", { pool: this.name });
    } else {
      this.problems.clear("fail-open", "the pool's pods are scraped again", { pool: this.name });
    }
    const { grid, filled } = this.gridFor(features);
    const predictions = allocatePredictions(pods.length, grid);
    const fetching = new Map<Predictor, Promise<void>>();
    for (const quantity of QUANTITIES) {
      const predictor = this.options.predictors[quantity];
      this.fillSafely(predictor, quantity, filled, predictions);
      // A remote service is asked on the configured grid alone: its rows stay the same whatever the
      // pods' capacities, and its values are placed on the knots as the kernel would interpolate them.
      if (predictor.refresh && !fetching.has(predictor)) fetching.set(predictor, predictor.refresh(features, this.options.gridTokens));
    }
    this.lastFetch = Promise.all(fetching.values()).then(() => undefined);
    const snap = this.toSnapshot(pods, statuses, predictions);
    this.current = snap;
    this.loadSeq++;
    this.shared.publish(snap);
    this.published.push({ version: snap.version, addresses: pods.map((p) => p.spec.address), features, statuses });
    if (this.published.length > VERSIONS_KEPT) this.published.shift();
    this.lastRefreshMs = performance.now() - started;
    return snap;
  }

  /**
   * A pick on this pool's latest snapshot: records its in-flight entry and adds its load to its pods
   * (the same increments the kernel applies inside a batch). Returns the pick's request id (minted
   * when it brought none), or null when the result names no pods or a version that is no longer known.
   * A caller that has looked up the result's version passes its pods.
   */
  /**
   * Pod `i` of a result, in the current snapshot's order. A worker's result can come back after a
   * refresh whose snapshot orders other pods (one added or deleted meanwhile): its indices go there by
   * address, -1 for a pod that snapshot no longer has (or a version no longer known).
   */
  currentIndex(result: PickResult, i: number, pods: PublishedPods | undefined = this.podsAt(result.version)): number {
    if (this.current !== null && result.version === this.current.version) return i;
    const latest = this.latestPods;
    if (pods === undefined || latest === undefined) return -1;
    // A map, not indexOf: at 65,536 pods four scans a pick held the main thread 156-179 ms for a batch of 256.
    if (this.latestIndex?.version !== latest.version) {
      this.latestIndex = { version: latest.version, byAddress: new Map(latest.addresses.map((address, k) => [address, k])) };
    }
    return this.latestIndex.byAddress.get(pods.addresses[i]) ?? -1;
  }

  /** Whether a result's pods are still candidates in the current snapshot (true for a result without pods). */
  stillCandidates(result: PickResult): boolean {
    const snap = this.current;
    if (result.decode < 0 || snap === null || result.version === snap.version) return true;
    const eligible = (i: number) => {
      const now = this.currentIndex(result, i);
      return now >= 0 && (snap.roles[now] & ROLE_ELIGIBLE) !== 0;
    };
    return eligible(result.decode) && (result.prefill < 0 || eligible(result.prefill));
  }

  recordPick(
    requestId: string | undefined,
    req: PickRequest,
    result: PickResult,
    predicted: PredictedTimes = predictedOf(result),
    pods: PublishedPods | undefined = this.podsAt(result.version),
  ): string | null {
    const snap = this.current;
    if (result.decode < 0 || pods === undefined || snap === null || this.latestPods === undefined) return null;
    const now = this.options.clock.nowMs();
    const uncached = req.inputTokens * (1 - req.prefixHit);
    const local = result.prefill < 0;
    const decodeNow = this.currentIndex(result, result.decode, pods);
    const prefillNow = local ? decodeNow : this.currentIndex(result, result.prefill, pods);
    const compute =
      prefillNow < 0
        ? local
          ? result.ttftMs
          : result.prefillTtftMs
        : interpolate(local ? snap.localPrefillMs : snap.prefillLoadMs, snap.pods, snap.gridTokens.length, gridPosition(snap.gridTokens, uncached), prefillNow);
    const pick: NewInflightPick<PodFeatures> = {
      requestId,
      pool: this.options.name,
      prefill: local ? undefined : pods.addresses[result.prefill],
      decode: pods.addresses[result.decode],
      inputTokens: req.inputTokens,
      outputTokens: req.outputTokens,
      prefillTokens: uncached,
      prefillComputeMs: compute,
      kvTokens: req.inputTokens + req.outputTokens / 2,
      // A local prefill ends when its TTFT does; a remote one before the transfer and the decode wait.
      prefillDoneMs: now + (local ? result.ttftMs : result.prefillTtftMs),
      decodeDoneMs: now + result.ttftMs + result.tpotMs * req.outputTokens,
      predicted,
      prefillFeatures: local ? undefined : pods.features[result.prefill],
      decodeFeatures: pods.features[result.decode],
    };
    const id = this.inflight.add(pick);
    this.meanIsl += MEAN_ALPHA * (req.inputTokens - this.meanIsl);
    this.meanOsl += MEAN_ALPHA * (req.outputTokens - this.meanOsl);
    // The current snapshot was built before this entry was added, whatever its version: it does not
    // count the pick yet, so its load goes there until the next refresh counts the entry itself.
    const d = decodeNow;
    const tpot = d < 0 ? 0 : snap.tpotPerRequestMs[d] + snap.tpotPerTokenMs[d] * (req.inputTokens + req.outputTokens);
    if (local) {
      if (d >= 0) this.addLoad(snap, d, 0, compute + snap.waitPerRequestMs[d], tpot);
    } else {
      if (prefillNow >= 0) this.addLoad(snap, prefillNow, compute, 0, 0);
      if (d >= 0) this.addLoad(snap, d, 0, snap.waitPerRequestMs[d], tpot);
    }
    return id;
  }

  private addLoad(snap: PoolSnapshot, i: number, prefillMs: number, decodeMs: number, tpotMs: number): void {
    snap.prefillQueueMs[i] += prefillMs;
    snap.decodeQueueMs[i] += decodeMs;
    snap.tpotLoadMs[i] += tpotMs;
    this.loadSeq++;
    this.shared.addLoad(i, prefillMs, decodeMs, tpotMs);
  }

  private featuresOf(pod: PodState): PodFeatures {
    const spec = pod.spec;
    const tp = spec.tp ?? this.options.tp;
    const profileName = spec.profile ?? this.options.defaultProfile;
    const profile = this.options.profiles.get(profileName);
    const metrics = pod.metrics;
    const capacity =
      metrics?.kvCapacityTokens ?? profile?.kvCapacityTokens(tp, this.options.gpuMemoryUtilization) ?? 0;
    const load = this.inflight.podLoad(spec.address);
    return {
      address: spec.address,
      role: spec.role,
      tp,
      profile: profileName,
      waiting: metrics?.waiting ?? 0,
      running: metrics?.running ?? 0,
      kvTokensUsed: (metrics?.kvUsage ?? 0) * capacity,
      kvCapacityTokens: capacity,
      prefillRequestsInFlight: load.prefillRequests,
      prefillTokensInFlight: load.prefillTokens,
      prefillMsInFlight: load.prefillMsAhead,
      localPrefillMsInFlight: load.localPrefillMsAhead,
      decodeRequestsInFlight: load.decodeRequests,
      decodeTokensInFlight: load.decodeTokens,
      meanIsl: this.meanIsl,
      meanOsl: this.meanOsl,
    };
  }

  /**
   * The snapshot's grid for these pods (knots at the capacities of the pods that decode), and the
   * features the predictors fill from. When the grid has no room for a knot pair at every capacity,
   * those take their group's smallest capacity in copies, logged once; the pods' own features (what
   * the planners' utilisation and a remote predictor's rows read) keep their true capacity.
   */
  private gridFor(features: PodFeatures[]): { grid: Float64Array; filled: PodFeatures[] } {
    const decoding = features.filter((f) => f.role !== "prefill").map((f) => f.kvCapacityTokens);
    const { grid, roundedTo, unplaced } = gridWithCapacities(this.options.gridTokens, decoding);
    let roundedTokens = 0;
    const filled = features.map((f) => {
      const to = f.role === "prefill" ? undefined : roundedTo.get(f.kvCapacityTokens);
      if (to === undefined) return f;
      roundedTokens = Math.max(roundedTokens, f.kvCapacityTokens - to);
      return { ...f, kvCapacityTokens: to };
    });
    if (roundedTo.size > 0) {
      this.problems.fail(
        "grid",
        "capacities_grouped",
        "the pool's pods have more distinct KV capacities than the ISL grid has room for knots: pods are treated as holding the smallest capacity of their group, and a request between that and their own is refused on them",
        { pool: this.name, capacities: roundedTo.size, largestRoundingTokens: roundedTokens, maxGridPoints: MAX_GRID_POINTS },
      );
    } else if (unplaced > 0) {
      this.problems.fail(
        "grid",
        "no_room",
        "the ISL grid has no room for knots at the pods' KV capacities: a request close to a pod's capacity may be predicted a huge decode wait (configure fewer grid points)",
        { pool: this.name, capacities: unplaced, gridPoints: this.options.gridTokens.length, maxGridPoints: MAX_GRID_POINTS },
      );
    } else this.problems.clear("grid", "every KV capacity of the pool has its knots on the ISL grid", { pool: this.name });
    return { grid, filled };
  }

  /** A predictor that throws leaves zeros behind; make it loud once and keep the pool serving. */
  private fillSafely(predictor: Predictor, quantity: Quantity, features: PodFeatures[], out: PoolPredictions): void {
    try {
      predictor.fill(quantity, features, out);
      this.problems.clear(`${quantity}`, "predictor recovered", { pool: this.name, predictor: predictor.kind });
    } catch (err) {
      this.problems.fail(`${quantity}`, (err as Error).message, "predictor failed; its pods are left out of this refresh", {
        pool: this.name,
        predictor: predictor.kind,
      });
      out.prefillMs.fill(NaN);
    }
  }

  private toSnapshot(pods: readonly PodState[], statuses: readonly PodStatus[], p: PoolPredictions): PoolSnapshot {
    const n = pods.length;
    const invalid = sanitize(p);
    const roles = new Uint8Array(n);
    const nodeIds = new Int32Array(n);
    const rackIds = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const spec = pods[i].spec;
      let bits = 0;
      if (spec.role !== "decode") bits |= ROLE_PREFILL;
      if (spec.role !== "prefill") bits |= ROLE_DECODE;
      if (statuses[i].eligible && invalid[i] === 0) bits |= ROLE_ELIGIBLE;
      roles[i] = bits;
      nodeIds[i] = spec.node === undefined ? -1 : intern(this.nodeIds, spec.node);
      rackIds[i] = spec.rack === undefined ? -1 : intern(this.rackIds, spec.rack);
    }
    this.version = (this.version + 1) >>> 0;
    const snap: PoolSnapshot = { version: this.version, roles, nodeIds, rackIds, ...p };
    validateSnapshot(snap);
    return snap;
  }
}

/**
 * The grid a pool's snapshot is built on: `base` plus, for every distinct KV capacity c > 0 below its
 * last point, knots at c and at the next double above c. A pod's decode wait steps to
 * MAX_PREDICTION_MS where a prompt stops fitting its KV cache, and the kernel interpolates linearly
 * between grid points: sampled only at `base`, a step inside a segment spread over the whole segment,
 * so a 9,500-token prompt on a 10,000-token pod would be predicted a wait of 1.6 million ms. With a knot on
 * each side of the step (no double lies between them), a prompt up to c interpolates between waits
 * and a longer one between saturated values. Each knot pair costs two of the MAX_GRID_POINTS points;
 * when there are more capacities than room, they are grouped so the widest group spans as few tokens
 * as it can, each group's smallest gets the knots, and `roundedTo` maps every other capacity to it
 * (its pods must be treated as holding that much, or their step falls between knots again).
 * `unplaced`: capacities left out because the grid has no room for even one pair.
 */
export function gridWithCapacities(
  base: Float64Array,
  capacities: readonly number[],
  maxPoints = MAX_GRID_POINTS,
): { grid: Float64Array; roundedTo: Map<number, number>; unplaced: number } {
  const roundedTo = new Map<number, number>();
  const top = base[base.length - 1];
  const below = [...new Set(capacities.filter((c) => c > 0 && c < top))].sort((a, b) => a - b);
  if (below.length === 0) return { grid: base, roundedTo, unplaced: 0 };
  const pairs = Math.floor((maxPoints - base.length) / 2);
  if (pairs <= 0) return { grid: base, roundedTo, unplaced: below.length };
  let knots = below;
  if (below.length > pairs) {
    knots = [];
    for (const group of narrowestGroups(below, pairs)) {
      knots.push(group[0]);
      for (const c of group.slice(1)) roundedTo.set(c, group[0]);
    }
  }
  const points = new Set(base);
  for (const c of knots) {
    points.add(c);
    points.add(nextUp(c));
  }
  return { grid: Float64Array.from([...points].sort((a, b) => a - b)), roundedTo, unplaced: 0 };
}

/** Sorted values split into at most `count` runs, the widest run (last minus first) as narrow as it can be. */
function narrowestGroups(sorted: readonly number[], count: number): number[][] {
  const runs = (span: number) => {
    const out: number[][] = [];
    for (const x of sorted) {
      const last = out[out.length - 1];
      if (last !== undefined && x - last[0] <= span) last.push(x);
      else out.push([x]);
    }
    return out;
  };
  // Greedy runs from the smallest value need the fewest runs for a span; bisect on the span.
  let lo = 0;
  let hi = sorted[sorted.length - 1] - sorted[0];
  for (let i = 0; i < 64 && hi - lo > 1e-9 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (runs(mid).length <= count) hi = mid;
    else lo = mid;
  }
  return runs(hi);
}

const bits = new Float64Array(1);
const word = new BigUint64Array(bits.buffer);

/** The smallest double above a finite x > 0. */
function nextUp(x: number): number {
  bits[0] = x;
  word[0] += 1n;
  return bits[0];
}

function intern(ids: Map<string, number>, key: string): number {
  let id = ids.get(key);
  if (id === undefined) {
    id = ids.size;
    ids.set(key, id);
  }
  return id;
}

const CURVE_NAMES = ["prefillMs", "prefillLoadMs", "localPrefillMs", "decodeWaitMs", "tpotMs"] as const;
const PER_POD_NAMES = ["prefillQueueMs", "decodeQueueMs", "tpotLoadMs", "waitPerRequestMs", "tpotPerRequestMs", "tpotPerTokenMs"] as const;

/**
 * Marks pods with a value that is not finite and >= 0 (they leave the candidates) and sets such values
 * to 0 so the snapshot stays well formed.
 */
function sanitize(p: PoolPredictions): Uint8Array {
  const n = p.pods;
  const invalid = new Uint8Array(n);
  for (const name of [...CURVE_NAMES, ...PER_POD_NAMES]) {
    const a = p[name];
    for (let j = 0, i = 0; j < a.length; j++, i = i + 1 === n ? 0 : i + 1) {
      if (!(a[j] >= 0 && a[j] < Infinity)) {
        a[j] = 0;
        invalid[i] = 1;
      }
    }
  }
  return invalid;
}
