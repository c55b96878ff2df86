// headroom's own in-flight load (SPEC.md §5): every pick adds an entry on its pods at once, because
// scraped metrics lag by a scrape interval or more. A pod's side of an entry is released by a
// completion report, by a scrape taken late enough to count the request itself, or by expiry. The
// decode pod of a remote prefill receives the request only once the prefill is done (llm-d's sidecar
// sends it on with the prefill's answer), so only a scrape late enough after that counts it there.
//
// Every refresh asks each pod for its load and every pick adds an entry, so the costs follow what
// changes, not what is held: load is kept as running sums, a prefill moves between them as its
// predicted start and completion pass (popped from per-pod heaps), a scrape walks only the entries it
// releases (kept in dispatch order; the decode sides of remote prefills, which arrive in no set order,
// are all looked at), and expiry visits only the time slots that have passed. Slots are fine only near
// now: an overloaded pool predicts durations of hours, and a fine slot for every 64 ms of them was
// 134,402 slots for 348,627 entries after 4 s of never-reported picks; further out, one coarse slot
// holds a whole span until its time nears.
//
// A gateway that never reports leaves every pick here until it expires: a few hundred thousand
// entries at tens of thousands of picks per second. So entries are rows of typed-array columns, not
// objects, and the per-pod lists, the expiry slots and the heaps are links between row numbers. A pick
// that brings no request id gets one that names its row and the row's generation: the table finds it
// without a map and keeps no string for it, so such a pick leaves nothing for the collector at all.

import { randomBytes } from "node:crypto";
import type { Clock } from "../clock.js";
import { normalizeAddress } from "./address.js";

/** The times a pick predicted (shared by its answer and its in-flight entry; neither changes them). */
export interface PredictedTimes {
  prefillTtftMs: number;
  decodeTtftMs: number;
  transferMs: number;
  ttftMs: number;
  tpotMs: number;
}

/**
 * A pick as the in-flight load records it. The request's sizes, its predicted times and `F`, what the
 * engine knew of each pod at dispatch, are kept to learn from its report; the load never reads them.
 */
export interface InflightPick<F = unknown> {
  requestId: string;
  pool: string;
  /** Absent when the decode pod prefills locally. */
  prefill?: string;
  decode: string;
  inputTokens: number;
  outputTokens: number;
  /** Prompt tokens that need prefill (ISL x (1 - prefixHit)). */
  prefillTokens: number;
  /** Predicted prefill compute on the prefill pod (or on the decode pod, locally). */
  prefillComputeMs: number;
  /** KV tokens the request holds on its decode pod on average (ISL + OSL / 2). */
  kvTokens: number;
  /** Predicted completion of prefill (first token) and of the whole request, in clock ms. */
  prefillDoneMs: number;
  decodeDoneMs: number;
  predicted: PredictedTimes;
  /** No prefillFeatures when the decode pod prefills locally. */
  prefillFeatures?: F;
  decodeFeatures: F;
}

/** A pick to record: without a request id, the table mints one. */
export type NewInflightPick<F = unknown> = Omit<InflightPick<F>, "requestId"> & { requestId?: string };

/** Load an in-flight pick puts on one pod beyond what its last scrape shows. */
export interface PodInflight {
  prefillRequests: number;
  prefillTokens: number;
  /** Prefill compute still ahead of the pod (predicted completion not yet passed). */
  prefillMsAhead: number;
  /** The part of it that is local prefills (picks prefilled on their decode pod). */
  localPrefillMsAhead: number;
  decodeRequests: number;
  decodeTokens: number;
}

export type ReleaseReason = "report" | "scrape" | "expired" | "undelivered" | "pod_left";

export interface InflightOptions {
  clock: Clock;
  /** A scrape started this long after a dispatch counts the request in the pod's own numbers. */
  reflectDelayMs: number;
  /** An entry expires after this many times its predicted duration. */
  ttlFactor: number;
  /** Rows the columns hold before they first grow (default RESERVED_ROWS). */
  reserveRows?: number;
}

export interface InflightCounters {
  released: Record<ReleaseReason, number>;
  unknownReports: number;
  duplicatePicks: number;
}

/** Numbers in PredictedTimes. */
const PREDICTED = 5;

/** No row: the end of a list, or an empty one. */
const NIL = -1;

const enum Phase {
  None,
  /** Its whole prefill compute is still ahead of the pod. */
  Queued,
  /** Past its predicted start, not yet done. */
  Running,
}

/** Sides of a row still counted as load. */
const enum Held {
  Prefill = 1,
  Decode = 2,
}

/**
 * The table's columns, one element per row. grow() replaces the arrays, never this object, so the
 * lists and heaps that read them through it stay valid.
 */
class Columns<F> {
  /** The id the pick brought; undefined for a minted one (it is the row and its generation). */
  requestId: (string | undefined)[] = [];
  pool: (string | undefined)[] = [];
  /** The addresses as picked (reports and the engine see them so). */
  prefill: (string | undefined)[] = [];
  decode: (string | undefined)[] = [];
  prefillFeatures: (F | undefined)[] = [];
  decodeFeatures: (F | undefined)[] = [];
  /** The pods the sides load: no prefill pod for a local prefill (it runs on the decode pod). */
  prefillPod: (Pod | undefined)[] = [];
  decodePod: (Pod | undefined)[] = [];
  inputTokens = new Float64Array(0);
  outputTokens = new Float64Array(0);
  prefillTokens = new Float64Array(0);
  prefillComputeMs = new Float64Array(0);
  kvTokens = new Float64Array(0);
  prefillDoneMs = new Float64Array(0);
  decodeDoneMs = new Float64Array(0);
  dispatchMs = new Float64Array(0);
  expiresMs = new Float64Array(0);
  /** PredictedTimes, PREDICTED numbers per row in its order. */
  predicted = new Float64Array(0);
  held = new Uint8Array(0);
  phase = new Uint8Array(0);
  /** Where the row sits in its prefill pod's heap of its phase. */
  heapAt = new Int32Array(0);
  /** Links of the three lists a row can be on: its prefill pod's, its decode pod's, its expiry slot's. */
  prefillNext = new Int32Array(0);
  prefillPrev = new Int32Array(0);
  decodeNext = new Int32Array(0);
  decodePrev = new Int32Array(0);
  expiryNext = new Int32Array(0);
  expiryPrev = new Int32Array(0);
  /**
   * The key of the expiry slot the row is on: fine or coarse depended on the time of its pick, and a
   * cascade moves it, so its expiresMs alone does not tell.
   */
  expirySlot = new Float64Array(0);
  /** Times the row was released: a minted id names the generation it was given in. */
  generation = new Uint32Array(0);
  capacity = 0;

  constructor(capacity: number) {
    this.grow(capacity);
  }

  /** Makes room for `capacity` rows (twice as many as now by default), keeping every row. */
  grow(capacity = this.capacity * 2): void {
    this.inputTokens = grown(this.inputTokens, capacity);
    this.outputTokens = grown(this.outputTokens, capacity);
    this.prefillTokens = grown(this.prefillTokens, capacity);
    this.prefillComputeMs = grown(this.prefillComputeMs, capacity);
    this.kvTokens = grown(this.kvTokens, capacity);
    this.prefillDoneMs = grown(this.prefillDoneMs, capacity);
    this.decodeDoneMs = grown(this.decodeDoneMs, capacity);
    this.dispatchMs = grown(this.dispatchMs, capacity);
    this.expiresMs = grown(this.expiresMs, capacity);
    this.predicted = grown(this.predicted, PREDICTED * capacity);
    this.held = grown(this.held, capacity);
    this.phase = grown(this.phase, capacity);
    this.heapAt = grown(this.heapAt, capacity);
    this.prefillNext = grown(this.prefillNext, capacity);
    this.prefillPrev = grown(this.prefillPrev, capacity);
    this.decodeNext = grown(this.decodeNext, capacity);
    this.decodePrev = grown(this.decodePrev, capacity);
    this.expiryNext = grown(this.expiryNext, capacity);
    this.expiryPrev = grown(this.expiryPrev, capacity);
    this.expirySlot = grown(this.expirySlot, capacity);
    this.generation = grown(this.generation, capacity);
    this.capacity = capacity;
  }
}

function grown<T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(array: T, capacity: number): T {
  const out = new (array.constructor as new (n: number) => T)(capacity);
  out.set(array);
  return out;
}

/** A doubly linked list of rows, oldest first; its links are one pair of the table's columns. */
class RowList {
  head = NIL;
  tail = NIL;

  append(row: number, next: Int32Array, prev: Int32Array): void {
    next[row] = NIL;
    prev[row] = this.tail;
    if (this.tail === NIL) this.head = row;
    else next[this.tail] = row;
    this.tail = row;
  }

  unlink(row: number, next: Int32Array, prev: Int32Array): void {
    const before = prev[row]!;
    const after = next[row]!;
    if (before === NIL) this.head = after;
    else next[before] = after;
    if (after === NIL) this.tail = before;
    else prev[after] = before;
  }
}

/**
 * The prefills of one phase on one pod: their sums, and a binary min-heap of their rows by the time
 * each leaves the phase. Rows know their place in it (Columns.heapAt), so a prefill released early
 * leaves at once.
 */
class PhaseHeap {
  requests = 0;
  tokens = 0;
  /** Queued: the sum of compute ms; running: the sum of prefillDoneMs. */
  ms = 0;
  /** The same for local prefills alone (prefilled on their decode pod), and their count. */
  localMs = 0;
  localRequests = 0;
  private rows = new Int32Array(8);
  private leavesAtMs = new Float64Array(8);

  constructor(private readonly phase: Phase.Queued | Phase.Running) {}

  /** When the first row leaves the phase (Infinity when none is in it). */
  get nextMs(): number {
    return this.requests === 0 ? Infinity : this.leavesAtMs[0]!;
  }

  get first(): number {
    return this.rows[0]!;
  }

  add<F>(row: number, c: Columns<F>): void {
    const leavesAtMs = this.phase === Phase.Queued ? c.prefillDoneMs[row]! - c.prefillComputeMs[row]! : c.prefillDoneMs[row]!;
    if (this.requests === this.rows.length) {
      const capacity = this.rows.length * 2;
      this.rows = grown(this.rows, capacity);
      this.leavesAtMs = grown(this.leavesAtMs, capacity);
    }
    this.requests++;
    this.tokens += c.prefillTokens[row]!;
    this.ms += this.msOf(row, c);
    if (isLocal(row, c)) {
      this.localMs += this.msOf(row, c);
      this.localRequests++;
    }
    c.phase[row] = this.phase;
    this.place(this.requests - 1, row, leavesAtMs, c);
    this.up(this.requests - 1, c);
  }

  remove<F>(row: number, c: Columns<F>): void {
    const at = c.heapAt[row]!;
    this.requests--;
    // Sums of fractions do not return to exactly 0 by subtraction.
    this.tokens = this.requests === 0 ? 0 : this.tokens - c.prefillTokens[row]!;
    this.ms = this.requests === 0 ? 0 : this.ms - this.msOf(row, c);
    if (isLocal(row, c)) {
      this.localRequests--;
      this.localMs = this.localRequests === 0 ? 0 : this.localMs - this.msOf(row, c);
    }
    c.phase[row] = Phase.None;
    // The last row takes the removed one's place and moves up or down from there.
    const last = this.requests;
    if (at === last) return;
    const leavesAtMs = this.leavesAtMs[last]!;
    this.place(at, this.rows[last]!, leavesAtMs, c);
    if (at > 0 && this.leavesAtMs[(at - 1) >> 1]! > leavesAtMs) this.up(at, c);
    else this.down(at, c);
  }

  /** What the row adds to `ms`. */
  private msOf<F>(row: number, c: Columns<F>): number {
    return this.phase === Phase.Queued ? c.prefillComputeMs[row]! : c.prefillDoneMs[row]!;
  }

  private place<F>(i: number, row: number, leavesAtMs: number, c: Columns<F>): void {
    this.rows[i] = row;
    this.leavesAtMs[i] = leavesAtMs;
    c.heapAt[row] = i;
  }

  private up<F>(i: number, c: Columns<F>): void {
    const row = this.rows[i]!;
    const key = this.leavesAtMs[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.leavesAtMs[parent]! <= key) break;
      this.place(i, this.rows[parent]!, this.leavesAtMs[parent]!, c);
      i = parent;
    }
    this.place(i, row, key, c);
  }

  private down<F>(i: number, c: Columns<F>): void {
    const row = this.rows[i]!;
    const key = this.leavesAtMs[i]!;
    const n = this.requests;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.leavesAtMs[child + 1]! < this.leavesAtMs[child]!) child++;
      if (this.leavesAtMs[child]! >= key) break;
      this.place(i, this.rows[child]!, this.leavesAtMs[child]!, c);
      i = child;
    }
    this.place(i, row, key, c);
  }
}

/** Whether a row's prefill runs on its decode pod. */
function isLocal<F>(row: number, c: Columns<F>): boolean {
  const prefillPod = c.prefillPod[row];
  return prefillPod === undefined || prefillPod === c.decodePod[row];
}

/**
 * When a remote prefill's request reaches its decode pod: its predicted prefill end and transfer. vLLM
 * counts a request still pulling its KV as waiting; counting from the end of the transfer too holds the
 * load a little longer, for a prefill that ends late.
 */
function arrivalMs<F>(row: number, c: Columns<F>): number {
  return c.prefillDoneMs[row]! + c.predicted[PREDICTED * row + 2]!;
}

/** One pod's share of the in-flight entries. */
class Pod {
  /** Rows whose prefill side is held here (remote prefills; a local one is on the decode list). */
  readonly prefills = new RowList();
  /** Rows whose decode side is held here and that reach the pod at dispatch (local prefills). */
  readonly decodes = new RowList();
  /**
   * Rows whose decode side is held here and that reach the pod only when their remote prefill is done
   * (on the decode list's links: a row's decode side is on one of the two).
   */
  readonly arriving = new RowList();
  /** Rows on any of them. */
  held = 0;
  readonly queued = new PhaseHeap(Phase.Queued);
  readonly running = new PhaseHeap(Phase.Running);
  decodeRequests = 0;
  decodeTokens = 0;
  /** The spellings of the address picks used, each a key of InflightLoad.podsByAddress. */
  readonly spellings: string[] = [];
  /** When an expiry pass first found it holding nothing since it last held something; NaN while it holds. */
  idleSinceMs = NaN;
}

/**
 * A pod that has held nothing for this long is forgotten by the expiry pass (a pick on it makes it
 * anew). Forgetting every idle pod at once remade, at the next picks, pods that reports had just
 * emptied: the three pools of bench:pick-path's stream, reported frame by frame, rebuilt their 384
 * pods between passes, each with its heaps' typed arrays, which the young generation's collections
 * then copied (`path-stream`'s scavenge median 2.5-3.2 ms before, 1.1-2.3 since).
 */
export const IDLE_POD_FORGET_MS = 60_000;

/**
 * Rows the typed columns are sized for from the start, about 150 MB of address space: a zeroed
 * allocation this large is fresh pages, which the OS commits only as rows are first written, so an
 * idle table costs no memory. Past it the columns double, copying every row: doubling from a small
 * start did that at every power of two, and at 131,072 rows the copy and the collections around it
 * held the event loop for 74.7 ms in bench:rpc's open loop (bench/busy-periods.ts on its profile).
 */
export const RESERVED_ROWS = 1 << 20;

export class InflightLoad<F = unknown> {
  private readonly c: Columns<F>;
  /** Rows of picks that brought their own request id. */
  private readonly rowOf = new Map<string, number>();
  /**
   * Minted ids are this prefix, the row and its generation in base 36: unique in the process by the
   * generation, across replicas and restarts by the prefix's random 48 bits.
   */
  private readonly mintPrefix = `${randomBytes(6).toString("hex")}-`;
  /** Rows never used yet start at `fresh`; released ones wait in `free`. */
  private fresh = 0;
  private free = new Int32Array(64);
  private freeCount = 0;
  /**
   * Pods by normalised address, and by every spelling seen: normalising both addresses of every pick
   * cost 2.6 % of an HTTP pick's CPU (bench:pick-path-ab, both orders).
   */
  private readonly pods = new Map<string, Pod>();
  private readonly podsByAddress = new Map<string, Pod>();
  /**
   * Live rows by expiry slot (a timing wheel of two levels): a row expiring within EXPIRY_HORIZON_MS
   * of its pick, or in a coarse span already cascaded, is on the fine slot of EXPIRY_SLOT_MS its
   * expiresMs falls in; a later one on its span's coarse slot of COARSE_SLOT_MS (coarseSlotOf), which
   * expire() spreads over fine slots once the span starts within the horizon. A row leaves its slot
   * when dropped, so a reported entry is not kept until its expiry; the slot's list may stay
   * (SLOTS_KEPT).
   */
  private readonly expirySlots = new Map<number, RowList>();
  /** The earliest fine slot expire() has not emptied yet. */
  private nextSlot: number;
  /** The start of the earliest coarse span not yet cascaded: every earlier one started within the horizon of a pass. */
  private nextSpanMs: number;
  readonly counters: InflightCounters = { released: { report: 0, scrape: 0, expired: 0, undelivered: 0, pod_left: 0 }, unknownReports: 0, duplicatePicks: 0 };

  constructor(private readonly options: InflightOptions) {
    this.c = new Columns<F>(options.reserveRows ?? RESERVED_ROWS);
    this.nextSlot = slotOf(options.clock.nowMs());
    this.nextSpanMs = firstSpanAfter(options.clock.nowMs() + EXPIRY_HORIZON_MS);
  }

  get size(): number {
    return this.fresh - this.freeCount;
  }

  /** Expiry slots the table keeps, fine and coarse: those holding entries, and emptied ones up to SLOTS_KEPT until their time. */
  get slotCount(): number {
    return this.expirySlots.size;
  }

  /** Pods the table keeps: those holding entries and those idle for less than IDLE_POD_FORGET_MS. */
  get podCount(): number {
    return this.pods.size;
  }

  /**
   * Records a pick and returns its request id: the one it brought or, without one, a minted one. A
   * second pick with the same request id replaces the first (a gateway retry).
   */
  add(pick: NewInflightPick<F>): string {
    if (pick.requestId !== undefined) {
      const existing = this.rowFor(pick.requestId);
      if (existing !== undefined) {
        this.counters.duplicatePicks++;
        this.drop(existing);
      }
    }
    const now = this.options.clock.nowMs();
    const row = this.allocate();
    const c = this.c;
    const decodePod = this.podFor(pick.decode);
    const prefillPod = pick.prefill === undefined ? undefined : this.podFor(pick.prefill);
    c.requestId[row] = pick.requestId;
    c.pool[row] = pick.pool;
    c.prefill[row] = pick.prefill;
    c.decode[row] = pick.decode;
    c.prefillFeatures[row] = pick.prefillFeatures;
    c.decodeFeatures[row] = pick.decodeFeatures;
    c.prefillPod[row] = prefillPod;
    c.decodePod[row] = decodePod;
    c.inputTokens[row] = pick.inputTokens;
    c.outputTokens[row] = pick.outputTokens;
    c.prefillTokens[row] = pick.prefillTokens;
    c.prefillComputeMs[row] = pick.prefillComputeMs;
    c.kvTokens[row] = pick.kvTokens;
    c.prefillDoneMs[row] = pick.prefillDoneMs;
    c.decodeDoneMs[row] = pick.decodeDoneMs;
    c.dispatchMs[row] = now;
    c.expiresMs[row] = now + this.options.ttlFactor * Math.max(pick.decodeDoneMs - now, 1);
    const p = pick.predicted;
    const at = PREDICTED * row;
    c.predicted[at] = p.prefillTtftMs;
    c.predicted[at + 1] = p.decodeTtftMs;
    c.predicted[at + 2] = p.transferMs;
    c.predicted[at + 3] = p.ttftMs;
    c.predicted[at + 4] = p.tpotMs;
    c.held[row] = prefillPod === undefined ? Held.Decode : Held.Prefill | Held.Decode;
    if (pick.requestId !== undefined) this.rowOf.set(pick.requestId, row);
    // A prefill picked on its own decode pod is held, and released, with the decode side (isLocal).
    const remote = prefillPod !== undefined && prefillPod !== decodePod;
    // The decode pod receives a remote prefill's request when the prefill is done (arrivalMs).
    (remote ? decodePod.arriving : decodePod.decodes).append(row, c.decodeNext, c.decodePrev);
    decodePod.held++;
    decodePod.decodeRequests++;
    decodePod.decodeTokens += pick.kvTokens;
    if (remote) {
      prefillPod.prefills.append(row, c.prefillNext, c.prefillPrev);
      prefillPod.held++;
    }
    // A local prefill runs on the decode pod.
    (prefillPod ?? decodePod).queued.add(row, c);
    // A span that starts within the horizon may have been cascaded already (nextSpanMs): its rows go
    // straight to their fine slots.
    const expiresMs = c.expiresMs[row]!;
    const spanMs = spanOf(expiresMs);
    const slot = spanMs >= now + EXPIRY_HORIZON_MS ? coarseSlotOf(spanMs) : slotOf(expiresMs);
    c.expirySlot[row] = slot;
    this.expiringAt(slot).append(row, c.expiryNext, c.expiryPrev);
    return pick.requestId ?? this.minted(row);
  }

  /** A completion report: releases the request everywhere and returns its pick. Unknown ids are counted and ignored. */
  report(requestId: string): InflightPick<F> | undefined {
    const row = this.reportedRow(requestId);
    if (row === undefined) return undefined;
    const pick = this.pickAt(row);
    this.drop(row);
    return pick;
  }

  /** report() for a report with nothing to learn from: returns only the request's pool, making no pick. */
  reportPool(requestId: string): string | undefined {
    const row = this.reportedRow(requestId);
    if (row === undefined) return undefined;
    const pool = this.c.pool[row]!;
    this.drop(row);
    return pool;
  }

  /**
   * A pick whose answer never reached its client (it went away first), so no request will follow it:
   * released as a report would, counted apart. False for an id not in flight (not counted as a report).
   */
  withdraw(requestId: string): boolean {
    const row = this.rowFor(requestId);
    if (row === undefined) return false;
    if (this.c.held[row] !== 0) this.counters.released.undelivered++;
    this.drop(row);
    return true;
  }

  /**
   * A successful scrape of `address` started at scrapedAtMs: the pod's own counts now include every
   * request that reached it at least reflectDelayMs before (at dispatch, or for the decode side of a
   * remote prefill, when the prefill and transfer were predicted done), so those sides stop counting
   * here. The entry itself stays until its report or expiry, so a late report is still recognised.
   */
  onScrape(address: string, scrapedAtMs: number): void {
    const pod = this.podAt(address);
    if (pod !== undefined) this.counters.released.scrape += this.releaseReachedBy(pod, scrapedAtMs - this.options.reflectDelayMs);
  }

  /** Drops entries older than ttlFactor x their predicted duration; those still holding load count as expired. */
  expire(): number {
    const now = this.options.clock.nowMs();
    const c = this.c;
    let expired = 0;
    this.cascade(now);
    const nowSlot = slotOf(now);
    // Every fine slot before now's has passed entirely; in now's, only some entries have. After a long
    // gap (a clock that jumps), the occupied slots are fewer than the passed ones. The coarse slots
    // left start past the horizon: their keys are past nowSlot.
    const slots = nowSlot - this.nextSlot >= this.expirySlots.size ? [...this.expirySlots.keys()] : range(this.nextSlot, nowSlot);
    for (const slot of slots) {
      const expiring = this.expirySlots.get(slot);
      if (expiring === undefined || slot > nowSlot) continue;
      for (let row = expiring.head; row !== NIL; ) {
        const after = c.expiryNext[row]!;
        if (c.expiresMs[row]! < now) {
          if (c.held[row] !== 0) {
            this.counters.released.expired++;
            expired++;
          }
          this.drop(row);
        }
        row = after;
      }
      // A slot stays while it may still receive rows: emptied by reports, it waits for its time.
      if (expiring.head === NIL && slot < nowSlot) this.expirySlots.delete(slot);
    }
    this.nextSlot = nowSlot;
    for (const [key, pod] of this.pods) {
      if (pod.held > 0) pod.idleSinceMs = NaN;
      else if (Number.isNaN(pod.idleSinceMs)) pod.idleSinceMs = now;
      else if (now - pod.idleSinceMs >= IDLE_POD_FORGET_MS) this.removePod(key, pod);
    }
    return expired;
  }

  /** Load on a pod from picks its last scrape has not counted. */
  podLoad(address: string): PodInflight {
    const load: PodInflight = { prefillRequests: 0, prefillTokens: 0, prefillMsAhead: 0, localPrefillMsAhead: 0, decodeRequests: 0, decodeTokens: 0 };
    const pod = this.podAt(address);
    if (pod === undefined) return load;
    load.decodeRequests = pod.decodeRequests;
    load.decodeTokens = pod.decodeTokens;
    const now = this.options.clock.nowMs();
    this.advancePrefills(pod, now);
    load.prefillRequests = pod.queued.requests + pod.running.requests;
    load.prefillTokens = pod.queued.tokens + pod.running.tokens;
    // A queued prefill has its whole compute ahead, a running one what is left until it is done.
    load.prefillMsAhead = pod.queued.ms + Math.max(0, pod.running.ms - pod.running.requests * now);
    load.localPrefillMsAhead = pod.queued.localMs + Math.max(0, pod.running.localMs - pod.running.localRequests * now);
    return load;
  }

  /** Entries holding load on a pod (the lists the property test checks; /v1/state shows podLoad). */
  entriesOn(address: string): number {
    return this.podAt(address)?.held ?? 0;
  }

  /** Whether a request is still in flight (until its report or expiry). */
  has(requestId: string): boolean {
    return this.rowFor(requestId) !== undefined;
  }

  /** Forgets a pod that left (its entries stay for their reports, without load there). */
  forgetPod(address: string): void {
    const key = normalizeAddress(address);
    const pod = this.pods.get(key);
    if (pod === undefined) return;
    this.counters.released.pod_left += this.releaseReachedBy(pod, Infinity);
    this.removePod(key, pod);
  }

  /**
   * Releases the sides held on `pod` of the rows that reached it by `reachedByMs`; returns how many
   * rows that left holding nothing.
   */
  private releaseReachedBy(pod: Pod, reachedByMs: number): number {
    const c = this.c;
    let released = 0;
    // Each list is in dispatch order, and its rows reached the pod at dispatch: the first row too
    // recent ends its walk.
    for (const [list, next] of [
      [pod.prefills, c.prefillNext],
      [pod.decodes, c.decodeNext],
    ] as const) {
      for (let row = list.head; row !== NIL && c.dispatchMs[row]! <= reachedByMs; ) {
        const after = next[row]!;
        this.releaseOn(pod, row);
        if (c.held[row] === 0) released++;
        row = after;
      }
    }
    // Remote prefills reach the decode pod in no set order: every row is looked at, at a scrape, which
    // is rare beside picks. A heap in arrival order cost each pick a push and a pull: path-stream took
    // 1.08-1.09x the CPU per pick of the code without it in bench:pick-path-ab, 0.96-1.05x with this.
    for (let row = pod.arriving.head; row !== NIL; ) {
      const after = c.decodeNext[row]!;
      if (arrivalMs(row, c) <= reachedByMs) {
        this.releaseOn(pod, row);
        if (c.held[row] === 0) released++;
      }
      row = after;
    }
    return released;
  }

  /**
   * Moves the rows of every coarse span that starts within the horizon of `now` to their fine slots,
   * where they expire as any other: the rows of a span not yet cascaded expire no earlier than its
   * start, which the horizon keeps ahead of every pass until its own.
   */
  private cascade(now: number): void {
    const untilMs = now + EXPIRY_HORIZON_MS;
    if (this.nextSpanMs >= untilMs) return;
    const c = this.c;
    // After a long gap, the occupied slots are fewer than the spans passed.
    const spans = (untilMs - this.nextSpanMs) / COARSE_SLOT_MS >= this.expirySlots.size ? [...this.expirySlots.keys()].filter(isCoarse) : spanSlots(this.nextSpanMs, untilMs);
    for (const slot of spans) {
      const spanning = this.expirySlots.get(slot);
      // Negated for the fine slot of a NaN expiry, which isCoarse takes for coarse: it would cascade onto itself.
      if (spanning === undefined || !(spanStartOf(slot) < untilMs)) continue;
      for (let row = spanning.head; row !== NIL; ) {
        const after = c.expiryNext[row]!;
        const fine = slotOf(c.expiresMs[row]!);
        c.expirySlot[row] = fine;
        this.expiringAt(fine).append(row, c.expiryNext, c.expiryPrev);
        row = after;
      }
      // No pick joins a span once it starts within the horizon.
      this.expirySlots.delete(slot);
    }
    this.nextSpanMs = firstSpanAfter(untilMs);
  }

  /** The list of an expiry slot, made when it has none. */
  private expiringAt(slot: number): RowList {
    let list = this.expirySlots.get(slot);
    if (list === undefined) this.expirySlots.set(slot, (list = new RowList()));
    return list;
  }

  /** The row a report names, counted as reported (or the id as unknown). */
  private reportedRow(requestId: string): number | undefined {
    const row = this.rowFor(requestId);
    if (row === undefined) {
      this.counters.unknownReports++;
      return undefined;
    }
    if (this.c.held[row] !== 0) this.counters.released.report++;
    return row;
  }

  private minted(row: number): string {
    return `${this.mintPrefix}${row.toString(36)}.${this.c.generation[row]!.toString(36)}`;
  }

  /** The live row of a request id, minted or brought. */
  private rowFor(requestId: string): number | undefined {
    if (requestId.startsWith(this.mintPrefix)) {
      const start = this.mintPrefix.length;
      const dot = requestId.indexOf(".", start);
      // Only the id as minted names the row (base36 takes no other spelling), and only while the row's
      // generation is the id's: a row in use always has a decode pod, and a released one's generation
      // has moved past its last id.
      const row = dot < 0 ? -1 : base36(requestId, start, dot);
      const c = this.c;
      if (row >= 0 && row < this.fresh && base36(requestId, dot + 1, requestId.length) === c.generation[row] && c.decodePod[row] !== undefined && c.requestId[row] === undefined) return row;
    }
    return this.rowOf.get(requestId);
  }

  private pickAt(row: number): InflightPick<F> {
    const c = this.c;
    const at = PREDICTED * row;
    return {
      requestId: c.requestId[row] ?? this.minted(row),
      pool: c.pool[row]!,
      prefill: c.prefill[row],
      decode: c.decode[row]!,
      inputTokens: c.inputTokens[row]!,
      outputTokens: c.outputTokens[row]!,
      prefillTokens: c.prefillTokens[row]!,
      prefillComputeMs: c.prefillComputeMs[row]!,
      kvTokens: c.kvTokens[row]!,
      prefillDoneMs: c.prefillDoneMs[row]!,
      decodeDoneMs: c.decodeDoneMs[row]!,
      predicted: {
        prefillTtftMs: c.predicted[at]!,
        decodeTtftMs: c.predicted[at + 1]!,
        transferMs: c.predicted[at + 2]!,
        ttftMs: c.predicted[at + 3]!,
        tpotMs: c.predicted[at + 4]!,
      },
      prefillFeatures: c.prefillFeatures[row],
      decodeFeatures: c.decodeFeatures[row]!,
    };
  }

  private podAt(address: string): Pod | undefined {
    return this.podsByAddress.get(address) ?? this.pods.get(normalizeAddress(address));
  }

  private podFor(address: string): Pod {
    let pod = this.podsByAddress.get(address);
    if (pod !== undefined) return pod;
    const key = normalizeAddress(address);
    pod = this.pods.get(key);
    if (pod === undefined) this.pods.set(key, (pod = new Pod()));
    pod.spellings.push(address);
    this.podsByAddress.set(address, pod);
    return pod;
  }

  private removePod(key: string, pod: Pod): void {
    this.pods.delete(key);
    for (const spelling of pod.spellings) this.podsByAddress.delete(spelling);
  }

  private allocate(): number {
    if (this.freeCount > 0) return this.free[--this.freeCount]!;
    if (this.fresh === this.c.capacity) this.c.grow();
    return this.fresh++;
  }

  /** Releases whatever sides of `row` are held on `pod` (a local prefill goes with its decode side). */
  private releaseOn(pod: Pod, row: number): void {
    const c = this.c;
    const held = c.held[row]!;
    if (held & Held.Decode && c.decodePod[row] === pod) {
      const remote = !isLocal(row, c);
      c.held[row] = held & ~Held.Decode;
      (remote ? pod.arriving : pod.decodes).unlink(row, c.decodeNext, c.decodePrev);
      pod.held--;
      pod.decodeRequests--;
      // Sums of fractional tokens do not return to exactly 0 by subtraction.
      pod.decodeTokens = pod.decodeRequests === 0 ? 0 : pod.decodeTokens - c.kvTokens[row]!;
      // A local prefill, or one picked on its own decode pod, leaves with the decode side.
      if (!remote) {
        c.held[row] = 0;
        this.leavePhase(pod, row);
      }
    } else if (held & Held.Prefill && c.prefillPod[row] === pod) {
      c.held[row] = held & ~Held.Prefill;
      pod.prefills.unlink(row, c.prefillNext, c.prefillPrev);
      pod.held--;
      this.leavePhase(pod, row);
    }
  }

  private leavePhase(pod: Pod, row: number): void {
    const phase = this.c.phase[row];
    if (phase === Phase.Queued) pod.queued.remove(row, this.c);
    else if (phase === Phase.Running) pod.running.remove(row, this.c);
  }

  /** Moves queued prefills whose predicted start has passed to running, and drops those done by `now`. */
  private advancePrefills(pod: Pod, now: number): void {
    const c = this.c;
    while (pod.queued.nextMs <= now) {
      const row = pod.queued.first;
      pod.queued.remove(row, c);
      pod.running.add(row, c);
    }
    while (pod.running.nextMs <= now) pod.running.remove(pod.running.first, c);
  }

  private drop(row: number): void {
    const c = this.c;
    const requestId = c.requestId[row];
    if (requestId !== undefined) this.rowOf.delete(requestId);
    c.generation[row]++;
    const slot = c.expirySlot[row]!;
    const expiring = this.expirySlots.get(slot)!;
    expiring.unlink(row, c.expiryNext, c.expiryPrev);
    if (expiring.head === NIL && this.expirySlots.size > SLOTS_KEPT) this.expirySlots.delete(slot);
    const prefillPod = c.prefillPod[row];
    if (prefillPod !== undefined && c.held[row]! & Held.Prefill) this.releaseOn(prefillPod, row);
    const decodePod = c.decodePod[row]!;
    if (c.held[row]! & Held.Decode) this.releaseOn(decodePod, row);
    // The row's references go now, so that a free row keeps nothing alive.
    c.requestId[row] = c.pool[row] = c.prefill[row] = c.decode[row] = undefined;
    c.prefillFeatures[row] = c.decodeFeatures[row] = undefined;
    c.prefillPod[row] = c.decodePod[row] = undefined;
    if (this.freeCount === this.free.length) this.free = grown(this.free, this.free.length * 2);
    this.free[this.freeCount++] = row;
  }
}

/**
 * The number that s's characters [from, to) spell in base 36 as Number#toString(36) writes it (lower
 * case, no leading zero), or -1 for any other spelling: "0a" and "A" are not "a". At most 10 digits,
 * well inside a double's integers. Read without slicing: every report of a minted id comes here.
 */
function base36(s: string, from: number, to: number): number {
  const digits = to - from;
  if (digits < 1 || digits > 10 || (digits > 1 && s.charCodeAt(from) === 48)) return -1;
  let value = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 122 ? c - 87 : -1;
    if (digit < 0) return -1;
    value = value * 36 + digit;
  }
  return value;
}

/** Width of one expiry slot: about the expiry check's period, so a check visits one or two slots. */
export const EXPIRY_SLOT_MS = 64;
/**
 * Expiries this near a pick's time, or a pass's, get fine slots: about (EXPIRY_HORIZON_MS +
 * COARSE_SLOT_MS) / EXPIRY_SLOT_MS of them hold rows after a pass. An entry predicted to run for
 * seconds (ttlFactor x its duration) never waits in a coarse slot, so a reported one costs no cascade.
 */
export const EXPIRY_HORIZON_MS = 65_536;
/** Width of a coarse slot: picks predicted to run for hours make one slot per span of this, cascaded once. */
export const COARSE_SLOT_MS = 65_536;
/**
 * Slots emptied by reports stay until their time passes, up to this many slots in all, fine and
 * coarse: picks reported soon after they were made emptied and remade the same few slots all the time
 * (`path-stream` in bench:pick-path-ab took 0.94-0.98 of the CPU per pick of the code that deleted
 * them at once). Past it an emptied slot goes at once, so that picks expiring far apart cannot keep a
 * slot each.
 */
export const SLOTS_KEPT = 4096;

function slotOf(ms: number): number {
  return Math.floor(ms / EXPIRY_SLOT_MS);
}

/** The start of the coarse span `ms` falls in (a multiple of COARSE_SLOT_MS, itself one of EXPIRY_SLOT_MS). */
function spanOf(ms: number): number {
  return Math.floor(ms / COARSE_SLOT_MS) * COARSE_SLOT_MS;
}

/** The start of the first coarse span at or after `ms`. */
function firstSpanAfter(ms: number): number {
  return Math.ceil(ms / COARSE_SLOT_MS) * COARSE_SLOT_MS;
}

/**
 * A coarse span's slot key: half a fine slot past the fine key of its start, so that it is never a
 * fine key, whatever the clock's origin (negative times too; exact below 2^58 ms), and it sorts among
 * fine keys by time.
 */
function coarseSlotOf(spanMs: number): number {
  return spanMs / EXPIRY_SLOT_MS + 0.5;
}

function spanStartOf(coarseSlot: number): number {
  return (coarseSlot - 0.5) * EXPIRY_SLOT_MS;
}

function isCoarse(slot: number): boolean {
  return slot % 1 !== 0;
}

/** The keys of the coarse spans that start in [fromMs, untilMs). */
function spanSlots(fromMs: number, untilMs: number): number[] {
  const out: number[] = [];
  for (let ms = fromMs; ms < untilMs; ms += COARSE_SLOT_MS) out.push(coarseSlotOf(ms));
  return out;
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}
