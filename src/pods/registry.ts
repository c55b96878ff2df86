// Every known pod, merged by address from its sources (config, Kubernetes, the push API), with its
// latest scrape and whether it is a candidate now (SPEC.md §5). The registry decides freshness from
// scrape outcomes and the clock; it knows nothing of predictions or picks.

import type { Clock } from "../clock.js";
import { normalizeAddress } from "./address.js";
import type { Freshness, PodMetrics, PodSource, PodSpec, ScrapeOutcome } from "./types.js";
import { POD_SOURCES } from "./types.js";

/** Consecutive failed scrapes after which a pod leaves the candidates until a scrape succeeds. */
export const FAILURES_BEFORE_FAILING = 3;

/** A pod as the rest of headroom sees it: merged spec plus live scrape state. */
export interface PodState {
  readonly spec: Readonly<PodSpec>;
  /** Which sources know this address, lowest precedence first. */
  readonly sources: readonly PodSource[];
  readonly addedAtMs: number;
  /** Latest successful scrape. */
  readonly metrics?: PodMetrics;
  readonly consecutiveFailures: number;
  readonly lastFailure?: { cause: string; message: string; atMs: number };
}

export interface PodStatus {
  freshness: Freshness;
  eligible: boolean;
  /** Why the pod is not a candidate; absent when it is. */
  excludedBecause?: string;
  /** A candidate on its last good metrics only because every pod of its pool failed its scrapes or went stale. */
  failOpen?: true;
}

/**
 * When no pod of a pool that can decode is a candidate (so no pair can be made: a prefill pod alone
 * serves nothing, and an unscraped one is always a candidate), no scrape of the pool is fresh, and some
 * pods are out only for their scrapes (failing or stale, with metrics from an earlier good scrape, not
 * draining), those become candidates again on their last metrics. All of a pool's scrapes failing at
 * once is more often headroom's own trouble (an event loop too busy to read answers within
 * scrapeTimeoutMs, a network partition from the pods) than every pod dying together, and refusing
 * every pick would make headroom the cause of the failure; the pods that are really gone fail at the
 * gateway, which retries elsewhere. Envoy's panic threshold does the same.
 */
export function failOpen(pods: readonly PodState[], statuses: readonly PodStatus[]): PodStatus[] | null {
  if (statuses.some((s, i) => s.eligible && pods[i].spec.role !== "prefill")) return null;
  // A fresh scrape shows headroom's scraping works: the pods that fail theirs are really in trouble.
  if (statuses.some((s) => s.freshness === "fresh")) return null;
  const revived = statuses.map((s, i) =>
    (s.freshness === "failing" || s.freshness === "stale") && pods[i].metrics !== undefined && !pods[i].spec.draining
      ? { freshness: s.freshness, eligible: true, failOpen: true as const }
      : s,
  );
  return revived.some((s) => s.eligible) ? revived : null;
}

interface Entry {
  spec: PodSpec;
  sources: PodSource[];
  addedAtMs: number;
  metrics?: PodMetrics;
  consecutiveFailures: number;
  lastFailure?: { cause: string; message: string; atMs: number };
}

export interface PodRegistryOptions {
  clock: Clock;
  staleAfterMs: number;
}

/** Called with the pools whose membership, specs or drain state changed. Not called for scrapes. */
export type PodChangeListener = (pools: ReadonlySet<string>) => void;

/** What a source that gives whole pools says of an address in one pool, and when that last changed. */
interface Claim {
  spec: PodSpec;
  seq: number;
}

export class PodRegistry {
  /** Per source: address -> what it says, or null for a push-API deletion that hides other sources. */
  private readonly layers = new Map<PodSource, Map<string, PodSpec | null>>(POD_SOURCES.map((s) => [s, new Map()]));
  /**
   * Per source that gives whole pools (config, Kubernetes): pool -> address -> claim. Pools' sets come
   * apart (one watch per pool): an address freed in one pool and reused by a pod of another can be in
   * both sets for a while. The layer says what the most recently changed claim says, so the stale
   * pool repeating its set neither takes the address back nor, when it drops it, removes the live pod.
   */
  private readonly claims = new Map<PodSource, Map<string, Map<string, Claim>>>();
  private claimSeq = 0;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners: PodChangeListener[] = [];
  private readonly removalListeners: ((address: string) => void)[] = [];

  constructor(private readonly options: PodRegistryOptions) {}

  onChange(listener: PodChangeListener): void {
    this.listeners.push(listener);
  }

  /** Called with the address of every pod that leaves (its state elsewhere can be dropped). */
  onRemove(listener: (address: string) => void): void {
    this.removalListeners.push(listener);
  }

  /** Replaces what `source` says about `pool` (static config and Kubernetes resyncs give whole sets). */
  replacePool(source: PodSource, pool: string, specs: readonly PodSpec[]): void {
    this.replacePools(source, [pool], specs);
  }

  /**
   * Replaces what `source` says about several pools at once (a reloaded configuration): a pod that
   * moves between them is updated in place, keeping its scrapes and in-flight load, whichever pool
   * comes first.
   */
  replacePools(source: PodSource, pools: readonly string[], specs: readonly PodSpec[]): void {
    let byPool = this.claims.get(source);
    if (byPool === undefined) this.claims.set(source, (byPool = new Map()));
    const touched = new Set<string>();
    const before = new Map<string, Map<string, Claim>>();
    for (const pool of pools) {
      const old = byPool.get(pool) ?? new Map<string, Claim>();
      for (const address of old.keys()) touched.add(address);
      before.set(pool, old);
      byPool.set(pool, new Map());
    }
    for (const spec of specs) {
      const address = normalizeAddress(spec.address);
      const previous = before.get(spec.pool)?.get(address);
      const seq = previous !== undefined && sameSpec(previous.spec, spec) ? previous.seq : ++this.claimSeq;
      let claims = byPool.get(spec.pool);
      if (claims === undefined) byPool.set(spec.pool, (claims = new Map()));
      claims.set(address, { spec: { ...spec, address: spec.address }, seq });
      touched.add(address);
    }
    const layer = this.layers.get(source)!;
    for (const address of touched) {
      let latest: Claim | undefined;
      for (const claims of byPool.values()) {
        const claim = claims.get(address);
        if (claim !== undefined && (latest === undefined || claim.seq > latest.seq)) latest = claim;
      }
      if (latest === undefined) layer.delete(address);
      else layer.set(address, latest.spec);
    }
    this.remerge(touched);
  }

  /** Adds or updates one pod from `source`; fields it leaves out keep what lower sources say. */
  upsert(source: PodSource, spec: PodSpec): void {
    const address = normalizeAddress(spec.address);
    this.layers.get(source)!.set(address, { ...spec });
    this.remerge(new Set([address]));
  }

  /**
   * Deletes a pod. From `push`, the deletion also hides what config and Kubernetes say about the
   * address until it is pushed again (or the config is reloaded); returns false for an unknown pod.
   */
  remove(source: PodSource, address: string): boolean {
    const key = normalizeAddress(address);
    if (!this.entries.has(key)) return false;
    const layer = this.layers.get(source)!;
    if (source === "push") layer.set(key, null);
    else layer.delete(key);
    this.remerge(new Set([key]));
    return true;
  }

  /** Forgets the push API's deletions of config pods (a config reload restores them). */
  clearTombstones(): void {
    const push = this.layers.get("push")!;
    const touched = new Set<string>();
    for (const [address, spec] of push) {
      if (spec === null) {
        push.delete(address);
        touched.add(address);
      }
    }
    this.remerge(touched);
  }

  get(address: string): PodState | undefined {
    return this.entries.get(normalizeAddress(address));
  }

  /** The pods of `pool` in address order (the snapshot order, which breaks ties). */
  podsOf(pool: string): PodState[] {
    const out: PodState[] = [];
    for (const entry of this.entries.values()) if (entry.spec.pool === pool) out.push(entry);
    return out.sort((a, b) => (a.spec.address < b.spec.address ? -1 : a.spec.address > b.spec.address ? 1 : 0));
  }

  all(): PodState[] {
    return [...this.entries.values()];
  }

  /** Pods with a metrics URL, for the scraper. */
  scrapeTargets(): { address: string; metricsUrl: string }[] {
    const out: { address: string; metricsUrl: string }[] = [];
    for (const e of this.entries.values()) if (e.spec.metricsUrl) out.push({ address: e.spec.address, metricsUrl: e.spec.metricsUrl });
    return out;
  }

  /**
   * Records a scrape of `fromUrl` (the pod's metrics URL when not given). Ignored for pods no longer
   * known (the pod left while it was scraped) and for a URL the pod no longer has (it changed while the
   * scrape ran: those numbers describe another server), and for a good scrape older than the pod's.
   * Returns the pod and the metrics it had before, or undefined when the outcome was ignored.
   */
  recordScrape(address: string, outcome: ScrapeOutcome, fromUrl?: string): { pod: PodState; previous: PodMetrics | undefined } | undefined {
    const entry = this.entries.get(normalizeAddress(address));
    if (entry === undefined || (fromUrl !== undefined && fromUrl !== entry.spec.metricsUrl)) return undefined;
    const previous = entry.metrics;
    if (outcome.ok) {
      if (previous !== undefined && outcome.metrics.scrapedAtMs < previous.scrapedAtMs) return undefined;
      entry.metrics = outcome.metrics;
      entry.consecutiveFailures = 0;
    } else {
      entry.consecutiveFailures++;
      entry.lastFailure = { cause: outcome.cause, message: outcome.message, atMs: this.options.clock.nowMs() };
    }
    return { pod: entry, previous };
  }

  /** Freshness and candidacy of a pod now. */
  status(pod: PodState): PodStatus {
    const freshness = this.freshness(pod);
    let excludedBecause: string | undefined;
    if (pod.spec.draining) excludedBecause = "draining";
    else if (freshness === "pending") excludedBecause = "awaiting its first scrape";
    else if (freshness === "failing") {
      excludedBecause = `last ${pod.consecutiveFailures} scrapes failed (${pod.lastFailure?.cause}: ${pod.lastFailure?.message})`;
    } else if (freshness === "stale") {
      const age = pod.metrics ? `${Math.round(this.options.clock.nowMs() - pod.metrics.scrapedAtMs)} ms` : "ever";
      excludedBecause = `no good scrape for ${age} (staleAfterMs ${this.options.staleAfterMs})`;
    }
    return { freshness, eligible: excludedBecause === undefined, excludedBecause };
  }

  private freshness(pod: PodState): Freshness {
    if (!pod.spec.metricsUrl) return "unscraped";
    if (pod.consecutiveFailures >= FAILURES_BEFORE_FAILING) return "failing";
    const now = this.options.clock.nowMs();
    if (pod.metrics === undefined) {
      return now - pod.addedAtMs > this.options.staleAfterMs ? "stale" : "pending";
    }
    return now - pod.metrics.scrapedAtMs > this.options.staleAfterMs ? "stale" : "fresh";
  }

  private remerge(addresses: Set<string>): void {
    // The pools of pods that changed: an unchanged pod must not take back its pool's notification.
    const pools = new Set<string>();
    for (const address of addresses) {
      const before = this.entries.get(address);
      const merged = this.merge(address);
      if (merged === null) {
        if (before !== undefined) {
          pools.add(before.spec.pool);
          this.entries.delete(address);
          for (const listener of this.removalListeners) listener(before.spec.address);
        }
        continue;
      }
      if (before === undefined) {
        pools.add(merged.spec.pool);
        this.entries.set(address, { ...merged, addedAtMs: this.options.clock.nowMs(), consecutiveFailures: 0 });
      } else if (!sameSpec(before.spec, merged.spec) || before.sources.join() !== merged.sources.join()) {
        pools.add(before.spec.pool);
        pools.add(merged.spec.pool);
        const metricsChanged = before.spec.metricsUrl !== merged.spec.metricsUrl;
        before.spec = merged.spec;
        before.sources = merged.sources;
        // A new metrics endpoint starts over: old numbers describe another server.
        if (metricsChanged) {
          before.metrics = undefined;
          before.consecutiveFailures = 0;
          before.lastFailure = undefined;
          before.addedAtMs = this.options.clock.nowMs();
        }
      }
    }
    if (pools.size > 0) for (const listener of this.listeners) listener(pools);
  }

  private merge(address: string): { spec: PodSpec; sources: PodSource[] } | null {
    const said: PodSpec[] = [];
    const sources: PodSource[] = [];
    for (const source of POD_SOURCES) {
      const spec = this.layers.get(source)!.get(address);
      if (spec === undefined) continue;
      if (spec === null) return null;
      sources.push(source);
      said.push(spec);
    }
    if (said.length === 0) return null;
    return { spec: Object.assign({}, said[0], ...said.slice(1).map(definedFields)) as PodSpec, sources };
  }
}

function definedFields(spec: PodSpec): Partial<PodSpec> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) if (v !== undefined) out[k] = v;
  return out as Partial<PodSpec>;
}

function sameSpec(a: PodSpec, b: PodSpec): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof PodSpec>;
  for (const k of keys) if (a[k] !== b[k]) return false;
  return true;
}
