// headroom's own in-flight load (SPEC.md §5): every pick adds an entry on its pods at once, because
// scraped metrics lag by a scrape interval or more. A pod's side of an entry is released by a
// completion report, by a scrape taken late enough to count the request itself, or by expiry.
//
// Every refresh asks each pod for its load and every pick adds an entry, so the costs follow what
// changes, not what is held: load is kept as running sums, a prefill moves between them as its
// predicted start and completion pass (popped from per-pod heaps), a scrape walks only the entries it
// releases (they are kept in dispatch order), and expiry visits only the time slots that have passed.

import TinyQueue from "tinyqueue";
import type { Clock } from "../clock.js";
import { normalizeAddress } from "./registry.js";

/** `C` is what the engine keeps with a pick to learn from its report; the in-flight load never reads it. */
export interface InflightPick<C = unknown> {
  requestId: string;
  pool: string;
  /** Absent when the decode pod prefills locally. */
  prefill?: string;
  decode: string;
  /** Prompt tokens that need prefill (ISL x (1 - prefixHit)). */
  prefillTokens: number;
  /** Predicted prefill compute on the prefill pod (or on the decode pod, locally). */
  prefillComputeMs: number;
  /** KV tokens the request holds on its decode pod on average (ISL + OSL / 2). */
  kvTokens: number;
  /** Predicted completion of prefill (first token) and of the whole request, in clock ms. */
  prefillDoneMs: number;
  decodeDoneMs: number;
  context?: C;
}

export interface InflightEntry<C = unknown> extends InflightPick<C> {
  dispatchMs: number;
  /** Normalised addresses, compared on every load query. */
  prefillKey?: string;
  decodeKey: string;
  /** Sides still counted as load: the prefill pod's queue and the decode pod's batch. */
  prefillHeld: boolean;
  decodeHeld: boolean;
  /** When the entry is dropped whatever still holds it: dispatch + ttlFactor x its predicted duration. */
  expiresMs: number;
  /** Where its prefill counts: not at all, queued (its whole compute ahead) or running (until prefillDoneMs). */
  prefillPhase: PrefillPhase;
}

const enum PrefillPhase {
  None,
  Queued,
  Running,
}

/** Load an in-flight pick puts on one pod beyond what its last scrape shows. */
export interface PodInflight {
  prefillRequests: number;
  prefillTokens: number;
  /** Prefill compute still ahead of the pod (predicted completion not yet passed). */
  prefillMsAhead: number;
  decodeRequests: number;
  decodeTokens: number;
}

export type ReleaseReason = "report" | "scrape" | "expired";

export interface InflightOptions {
  clock: Clock;
  /** A scrape started this long after a dispatch counts the request in the pod's own numbers. */
  reflectDelayMs: number;
  /** An entry expires after this many times its predicted duration. */
  ttlFactor: number;
}

export interface InflightCounters {
  released: Record<ReleaseReason, number>;
  unknownReports: number;
  duplicatePicks: number;
}

/**
 * Prefills of one phase on one pod: their sums, and a heap by the time each leaves the phase. A prefill
 * released early stays in the heap until it reaches the top, where its phase no longer matches.
 */
class PrefillPhaseSums<C> {
  requests = 0;
  tokens = 0;
  /** Queued: the sum of compute ms; running: the sum of prefillDoneMs. */
  ms = 0;
  readonly heap: TinyQueue<InflightEntry<C>>;

  constructor(readonly leavesAt: (e: InflightEntry<C>) => number, private readonly msOf: (e: InflightEntry<C>) => number) {
    this.heap = new TinyQueue<InflightEntry<C>>([], (a, b) => leavesAt(a) - leavesAt(b));
  }

  add(e: InflightEntry<C>): void {
    this.requests++;
    this.tokens += e.prefillTokens;
    this.ms += this.msOf(e);
    this.heap.push(e);
  }

  remove(e: InflightEntry<C>): void {
    this.requests--;
    // Sums of fractions do not return to exactly 0 by subtraction.
    this.tokens = this.requests === 0 ? 0 : this.tokens - e.prefillTokens;
    this.ms = this.requests === 0 ? 0 : this.ms - this.msOf(e);
  }
}

const queuedUntil = (e: InflightEntry) => e.prefillDoneMs - e.prefillComputeMs;
const doneAt = (e: InflightEntry) => e.prefillDoneMs;
const computeMs = (e: InflightEntry) => e.prefillComputeMs;

/** One pod's share of the in-flight entries. */
interface PodEntries<C> {
  /** Entries holding a side here, in dispatch order. */
  held: Set<InflightEntry<C>>;
  /** Prefills here whose whole compute is still ahead. */
  queued: PrefillPhaseSums<C>;
  /** Prefills here past their predicted start, not yet done. */
  running: PrefillPhaseSums<C>;
  decodeRequests: number;
  decodeTokens: number;
}

export class InflightLoad<C = unknown> {
  private readonly byRequest = new Map<string, InflightEntry<C>>();
  private readonly byPod = new Map<string, PodEntries<C>>();
  /**
   * Live entries by slot of EXPIRY_SLOT_MS their expiresMs falls in (a timing wheel). An entry leaves its
   * slot when dropped, so a reported entry is not kept until its expiry.
   */
  private readonly expirySlots = new Map<number, Set<InflightEntry<C>>>();
  /** The earliest slot expire() has not emptied yet. */
  private nextSlot: number;
  readonly counters: InflightCounters = { released: { report: 0, scrape: 0, expired: 0 }, unknownReports: 0, duplicatePicks: 0 };

  constructor(private readonly options: InflightOptions) {
    this.nextSlot = slotOf(options.clock.nowMs());
  }

  get size(): number {
    return this.byRequest.size;
  }

  /** Records a pick; a second pick with the same request id replaces the first (a gateway retry). */
  add(pick: InflightPick<C>): InflightEntry<C> {
    const existing = this.byRequest.get(pick.requestId);
    if (existing !== undefined) {
      this.counters.duplicatePicks++;
      this.drop(existing);
    }
    const now = this.options.clock.nowMs();
    // Built field by field (not spread) so every entry has one shape.
    const entry: InflightEntry<C> = {
      requestId: pick.requestId,
      pool: pick.pool,
      prefill: pick.prefill,
      decode: pick.decode,
      prefillTokens: pick.prefillTokens,
      prefillComputeMs: pick.prefillComputeMs,
      kvTokens: pick.kvTokens,
      prefillDoneMs: pick.prefillDoneMs,
      decodeDoneMs: pick.decodeDoneMs,
      context: pick.context,
      dispatchMs: now,
      prefillKey: pick.prefill === undefined ? undefined : normalizeAddress(pick.prefill),
      decodeKey: normalizeAddress(pick.decode),
      prefillHeld: pick.prefill !== undefined,
      decodeHeld: true,
      expiresMs: now + this.options.ttlFactor * Math.max(pick.decodeDoneMs - now, 1),
      prefillPhase: PrefillPhase.Queued,
    };
    this.byRequest.set(pick.requestId, entry);
    const decodePod = this.pod(entry.decodeKey);
    decodePod.held.add(entry);
    decodePod.decodeRequests++;
    decodePod.decodeTokens += entry.kvTokens;
    // A local prefill runs on the decode pod.
    const prefillPod = entry.prefillKey === undefined ? decodePod : this.pod(entry.prefillKey);
    prefillPod.held.add(entry);
    prefillPod.queued.add(entry);
    const slot = slotOf(entry.expiresMs);
    let expiring = this.expirySlots.get(slot);
    if (expiring === undefined) this.expirySlots.set(slot, (expiring = new Set()));
    expiring.add(entry);
    return entry;
  }

  /** A completion report: releases the request everywhere. Unknown ids are counted and ignored. */
  report(requestId: string): InflightEntry<C> | undefined {
    const entry = this.byRequest.get(requestId);
    if (entry === undefined) {
      this.counters.unknownReports++;
      return undefined;
    }
    if (entry.prefillHeld || entry.decodeHeld) this.counters.released.report++;
    this.drop(entry);
    return entry;
  }

  /**
   * A successful scrape of `address` started at scrapedAtMs: the pod's own counts now include every
   * request dispatched to it at least reflectDelayMs before, so those sides stop counting here.
   * The entry itself stays until its report or expiry, so a late report is still recognised.
   */
  onScrape(address: string, scrapedAtMs: number): void {
    const key = normalizeAddress(address);
    const pod = this.byPod.get(key);
    if (pod === undefined) return;
    for (const entry of pod.held) {
      // Dispatch order: the first entry too recent to be counted ends the walk.
      if (entry.dispatchMs + this.options.reflectDelayMs > scrapedAtMs) break;
      const wasHeld = entry.prefillHeld || entry.decodeHeld;
      this.releaseOn(key, pod, entry);
      if (wasHeld && !entry.prefillHeld && !entry.decodeHeld) this.counters.released.scrape++;
    }
    if (pod.held.size === 0) this.byPod.delete(key);
  }

  /** Drops entries older than ttlFactor x their predicted duration; those still holding load count as expired. */
  expire(): number {
    const now = this.options.clock.nowMs();
    let expired = 0;
    const nowSlot = slotOf(now);
    // Every slot before now's has passed entirely; in now's, only some entries have. After a long gap
    // (a clock that jumps), the occupied slots are fewer than the passed ones.
    const slots = nowSlot - this.nextSlot >= this.expirySlots.size ? [...this.expirySlots.keys()] : range(this.nextSlot, nowSlot);
    for (const slot of slots) {
      const expiring = this.expirySlots.get(slot);
      if (expiring === undefined || slot > nowSlot) continue;
      for (const entry of expiring) {
        if (entry.expiresMs >= now) continue;
        if (entry.prefillHeld || entry.decodeHeld) {
          this.counters.released.expired++;
          expired++;
        }
        this.drop(entry);
      }
    }
    this.nextSlot = nowSlot;
    return expired;
  }

  /** Load on a pod from picks its last scrape has not counted. */
  podLoad(address: string): PodInflight {
    const load: PodInflight = { prefillRequests: 0, prefillTokens: 0, prefillMsAhead: 0, decodeRequests: 0, decodeTokens: 0 };
    const pod = this.byPod.get(normalizeAddress(address));
    if (pod === undefined) return load;
    load.decodeRequests = pod.decodeRequests;
    load.decodeTokens = pod.decodeTokens;
    const now = this.options.clock.nowMs();
    advancePrefills(pod, now);
    load.prefillRequests = pod.queued.requests + pod.running.requests;
    load.prefillTokens = pod.queued.tokens + pod.running.tokens;
    // A queued prefill has its whole compute ahead, a running one what is left until it is done.
    load.prefillMsAhead = pod.queued.ms + Math.max(0, pod.running.ms - pod.running.requests * now);
    return load;
  }

  /** Entries holding load on a pod (for /v1/state). */
  entriesOn(address: string): number {
    return this.byPod.get(normalizeAddress(address))?.held.size ?? 0;
  }

  get(requestId: string): InflightEntry<C> | undefined {
    return this.byRequest.get(requestId);
  }

  /** Forgets a pod that left (its entries stay for their reports, without load there). */
  forgetPod(address: string): void {
    const key = normalizeAddress(address);
    const pod = this.byPod.get(key);
    if (pod === undefined) return;
    for (const entry of pod.held) this.releaseOn(key, pod, entry);
    this.byPod.delete(key);
  }

  private pod(key: string): PodEntries<C> {
    let pod = this.byPod.get(key);
    if (pod === undefined) {
      pod = {
        held: new Set(),
        queued: new PrefillPhaseSums<C>(queuedUntil, computeMs),
        running: new PrefillPhaseSums<C>(doneAt, doneAt),
        decodeRequests: 0,
        decodeTokens: 0,
      };
      this.byPod.set(key, pod);
    }
    return pod;
  }

  /** Releases whatever sides of `entry` are on pod `key` (a local prefill goes with its decode side). */
  private releaseOn(key: string, pod: PodEntries<C>, entry: InflightEntry<C>): void {
    if (entry.decodeKey === key && entry.decodeHeld) {
      entry.decodeHeld = false;
      pod.decodeRequests--;
      // Sums of fractional tokens do not return to exactly 0 by subtraction.
      pod.decodeTokens = pod.decodeRequests === 0 ? 0 : pod.decodeTokens - entry.kvTokens;
    }
    if (entry.prefillKey === key) entry.prefillHeld = false;
    // Its prefill is here when it was picked here (or it is a local one, on the decode pod).
    if ((entry.prefillKey ?? entry.decodeKey) === key) leavePhase(pod, entry);
    pod.held.delete(entry);
  }

  private drop(entry: InflightEntry<C>): void {
    this.byRequest.delete(entry.requestId);
    const slot = slotOf(entry.expiresMs);
    const expiring = this.expirySlots.get(slot);
    if (expiring !== undefined && expiring.delete(entry) && expiring.size === 0) this.expirySlots.delete(slot);
    for (const key of entry.prefillKey !== undefined ? [entry.prefillKey, entry.decodeKey] : [entry.decodeKey]) {
      const pod = this.byPod.get(key);
      if (pod === undefined) continue;
      this.releaseOn(key, pod, entry);
      if (pod.held.size === 0) this.byPod.delete(key);
    }
    entry.prefillHeld = false;
    entry.decodeHeld = false;
  }
}

/** Width of one expiry slot: about the expiry check's period, so a check visits one or two slots. */
const EXPIRY_SLOT_MS = 64;

function slotOf(ms: number): number {
  return Math.floor(ms / EXPIRY_SLOT_MS);
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

function leavePhase<C>(pod: PodEntries<C>, entry: InflightEntry<C>): void {
  if (entry.prefillPhase === PrefillPhase.Queued) pod.queued.remove(entry);
  else if (entry.prefillPhase === PrefillPhase.Running) pod.running.remove(entry);
  entry.prefillPhase = PrefillPhase.None;
}

/** Moves queued prefills whose predicted start has passed to running, and drops those done by `now`. */
function advancePrefills<C>(pod: PodEntries<C>, now: number): void {
  for (let e = pod.queued.heap.peek(); e !== undefined && queuedUntil(e) <= now; e = pod.queued.heap.peek()) {
    pod.queued.heap.pop();
    if (e.prefillPhase !== PrefillPhase.Queued) continue;
    pod.queued.remove(e);
    e.prefillPhase = PrefillPhase.Running;
    pod.running.add(e);
  }
  for (let e = pod.running.heap.peek(); e !== undefined && doneAt(e) <= now; e = pod.running.heap.peek()) {
    pod.running.heap.pop();
    if (e.prefillPhase !== PrefillPhase.Running) continue;
    pod.running.remove(e);
    e.prefillPhase = PrefillPhase.None;
  }
}
