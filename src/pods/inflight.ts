// headroom's own in-flight load (SPEC.md §5): every pick adds an entry on its pods at once, because
// scraped metrics lag by a scrape interval or more. A pod's side of an entry is released by a
// completion report, by a scrape taken late enough to count the request itself, or by expiry.

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

export class InflightLoad<C = unknown> {
  private readonly byRequest = new Map<string, InflightEntry<C>>();
  /** Per pod address: entries holding a side on it. */
  private readonly byPod = new Map<string, Set<InflightEntry<C>>>();
  readonly counters: InflightCounters = { released: { report: 0, scrape: 0, expired: 0 }, unknownReports: 0, duplicatePicks: 0 };

  constructor(private readonly options: InflightOptions) {}

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
    // Built field by field (not spread) so every entry has one shape: load queries walk many of them.
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
      dispatchMs: this.options.clock.nowMs(),
      prefillKey: pick.prefill === undefined ? undefined : normalizeAddress(pick.prefill),
      decodeKey: normalizeAddress(pick.decode),
      prefillHeld: pick.prefill !== undefined,
      decodeHeld: true,
    };
    this.byRequest.set(pick.requestId, entry);
    if (entry.prefillKey !== undefined) this.podSet(entry.prefillKey).add(entry);
    this.podSet(entry.decodeKey).add(entry);
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
    const set = this.byPod.get(key);
    if (set === undefined) return;
    for (const entry of set) {
      if (entry.dispatchMs + this.options.reflectDelayMs > scrapedAtMs) continue;
      const wasHeld = entry.prefillHeld || entry.decodeHeld;
      if (entry.prefillKey === key) entry.prefillHeld = false;
      if (entry.decodeKey === key) entry.decodeHeld = false;
      set.delete(entry);
      if (wasHeld && !entry.prefillHeld && !entry.decodeHeld) this.counters.released.scrape++;
    }
    if (set.size === 0) this.byPod.delete(key);
  }

  /** Drops entries older than ttlFactor x their predicted duration; those still holding load count as expired. */
  expire(): number {
    const now = this.options.clock.nowMs();
    let expired = 0;
    for (const entry of this.byRequest.values()) {
      const duration = Math.max(entry.decodeDoneMs - entry.dispatchMs, 1);
      if (now <= entry.dispatchMs + this.options.ttlFactor * duration) continue;
      if (entry.prefillHeld || entry.decodeHeld) {
        this.counters.released.expired++;
        expired++;
      }
      this.drop(entry);
    }
    return expired;
  }

  /** Load on a pod from picks its last scrape has not counted. */
  podLoad(address: string): PodInflight {
    const load: PodInflight = { prefillRequests: 0, prefillTokens: 0, prefillMsAhead: 0, decodeRequests: 0, decodeTokens: 0 };
    const key = normalizeAddress(address);
    const set = this.byPod.get(key);
    if (set === undefined) return load;
    const now = this.options.clock.nowMs();
    for (const entry of set) {
      // A local prefill runs on the decode pod and is held as long as the decode side is.
      const prefillHere = entry.prefillKey === undefined ? entry.decodeHeld : entry.prefillHeld && entry.prefillKey === key;
      if (prefillHere && now < entry.prefillDoneMs) {
        load.prefillRequests++;
        load.prefillTokens += entry.prefillTokens;
        load.prefillMsAhead += Math.min(entry.prefillComputeMs, entry.prefillDoneMs - now);
      }
      if (entry.decodeHeld && entry.decodeKey === key) {
        load.decodeRequests++;
        load.decodeTokens += entry.kvTokens;
      }
    }
    return load;
  }

  /** Entries holding load on a pod (for /v1/state). */
  entriesOn(address: string): number {
    return this.byPod.get(normalizeAddress(address))?.size ?? 0;
  }

  get(requestId: string): InflightEntry<C> | undefined {
    return this.byRequest.get(requestId);
  }

  /** Forgets a pod that left (its entries stay for their reports, without load there). */
  forgetPod(address: string): void {
    const key = normalizeAddress(address);
    const set = this.byPod.get(key);
    if (set === undefined) return;
    for (const entry of set) {
      if (entry.prefillKey === key) entry.prefillHeld = false;
      if (entry.decodeKey === key) entry.decodeHeld = false;
    }
    this.byPod.delete(key);
  }

  private podSet(key: string): Set<InflightEntry<C>> {
    let set = this.byPod.get(key);
    if (set === undefined) {
      set = new Set();
      this.byPod.set(key, set);
    }
    return set;
  }

  private drop(entry: InflightEntry<C>): void {
    this.byRequest.delete(entry.requestId);
    for (const key of entry.prefillKey !== undefined ? [entry.prefillKey, entry.decodeKey] : [entry.decodeKey]) {
      const set = this.byPod.get(key);
      if (set === undefined) continue;
      set.delete(entry);
      if (set.size === 0) this.byPod.delete(key);
    }
    entry.prefillHeld = false;
    entry.decodeHeld = false;
  }
}
