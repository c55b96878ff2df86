// Everything headroom knows about its pods, assembled from the configuration: the pod registry and its
// sources (config, Kubernetes, the push API), scraping, in-flight load, the predictors, and one
// PoolState per pool whose snapshot is refreshed every `predictors.refreshMs` and on pod changes.
// Completion reports release in-flight load and teach the online and remote predictors.

import { Counter, Gauge, type Registry } from "prom-client";
import { every, type Cancel, type Clock } from "../clock.js";
import type { HeadroomConfig, PoolConfig } from "../config/schema.js";
import { BUILTIN_PROFILE } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { registered, tallied, talliedHistogram, type CounterTally, type TalliedHistogram } from "../metrics.js";
import { normalizeAddress } from "../pods/address.js";
import { InflightLoad, type PredictedTimes } from "../pods/inflight.js";
import type { KubeConfig } from "@kubernetes/client-node";
import { KubernetesDiscovery } from "../pods/kubernetes.js";
import { PodRegistry } from "../pods/registry.js";
import { Scraper } from "../pods/scraper.js";
import type { Freshness, PodSpec, ScrapeOutcome } from "../pods/types.js";
import { LatencyProfile } from "../predictors/latency-profile.js";
import { OnlinePredictor } from "../predictors/online.js";
import { ProfilePredictor } from "../predictors/profile.js";
import { checkRemoteConfig, remoteEndpointsFromEnv, remoteQuantities } from "../predictors/remote.js";
import { ThreadedRemotePredictor } from "../predictors/remote-threaded.js";
import { logGrid, QUANTITIES, type PodFeatures, type Predictor, type Quantity } from "../predictors/types.js";
import { PoolState } from "./pool-state.js";

/** ISL grid of the profile and online predictors: 12 log-spaced points, 16 to 32,768 tokens. */
export const PROFILE_GRID = logGrid(12, 16, 32_768);
/** The remote predictor's grid spans the same range with `predictors.remote.gridPoints` points. */
export function remoteGrid(points: number): Float64Array {
  return logGrid(points, 16, 32_768);
}

/** A completion report (SPEC.md §7, POST /v1/report), already validated by the server. */
export interface CompletionReport {
  requestId: string;
  ok: boolean;
  ttftMs?: number;
  tpotMs?: number;
  inputTokens?: number;
  outputTokens?: number;
  /** The address that actually served the decode, when a fallback did. */
  decode?: string;
}

export interface ClusterOptions {
  config: HeadroomConfig;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** Where the remote predictor's URLs come from (process.env by default). */
  env?: Record<string, string | undefined>;
  /** The Kubernetes API to discover pods from, when `pods.kubernetes` is configured (kubectl's by default). */
  kubeConfig?: KubeConfig;
  /**
   * Off: nothing is scraped over HTTP; scrapes arrive through `recordScrape` instead (the simulator
   * delivers its pods' metrics this way, on its own schedule). Default on.
   */
  scrape?: boolean;
}

export class Cluster {
  readonly pods: PodRegistry;
  readonly inflight: InflightLoad<PodFeatures>;
  readonly pools = new Map<string, PoolState>();
  readonly profiles: ReadonlyMap<string, LatencyProfile>;
  readonly profile: ProfilePredictor;
  readonly online?: OnlinePredictor;
  readonly remote?: ThreadedRemotePredictor;
  private readonly scraper: Scraper;
  private readonly discovery?: KubernetesDiscovery;
  private readonly stops: Cancel[] = [];
  private readonly dirty = new Set<string>();
  private flushScheduled = false;
  private readonly reports: CounterTally<"result">;
  /** Tallied (src/metrics.ts): every report with times observes it. */
  private readonly accuracy: TalliedHistogram<"pool" | "quantity">;
  private closed = false;

  /** Builds the cluster; a profile that cannot be read or a remote predictor without URLs is a ConfigError. */
  constructor(readonly options: ClusterOptions) {
    const { config, clock, logger, registry } = options;
    this.profiles = loadProfiles(config);
    this.profile = new ProfilePredictor({ profiles: this.profiles, tpEfficiency: config.predictors.tpEfficiency });

    const env = options.env ?? process.env;
    const remoteCheck = checkRemoteConfig(config.predictors, env);
    if (remoteCheck.problems.length > 0) throw new ConfigError(remoteCheck.problems);
    for (const warning of remoteCheck.warnings) logger.log("warn", warning);

    const kinds = new Set(QUANTITIES.map((q) => kindOf(config, q)));
    if (kinds.has("online")) {
      this.online = new OnlinePredictor(this.profile, clock, {
        quantile: config.predictors.online.quantile,
        minPodSamples: config.predictors.online.minPodSamples,
      });
    }
    if (kinds.has("remote")) {
      this.remote = new ThreadedRemotePredictor({
        endpoints: remoteEndpointsFromEnv(env, remoteQuantities(config.predictors)),
        fallback: this.profile,
        options: { ...config.predictors.remote, refreshMs: config.predictors.refreshMs },
        clock,
        registry,
        logger,
      });
    }
    const predictors = Object.fromEntries(QUANTITIES.map((q) => [q, this.predictorFor(kindOf(config, q))])) as Record<Quantity, Predictor>;
    const grid = kinds.has("remote") ? remoteGrid(config.predictors.remote.gridPoints) : PROFILE_GRID;

    this.pods = new PodRegistry({ clock, staleAfterMs: config.pods.staleAfterMs });
    this.inflight = new InflightLoad<PodFeatures>({
      clock,
      reflectDelayMs: config.pods.reflectDelayMs,
      ttlFactor: config.pods.inflightTtlFactor,
    });
    for (const pool of config.pools) {
      this.pools.set(
        pool.name,
        new PoolState(
          {
            name: pool.name,
            tp: pool.tp,
            gpuMemoryUtilization: pool.gpuMemoryUtilization,
            expected: pool.expected,
            gridTokens: grid,
            defaultProfile: config.predictors.defaultProfile,
            profiles: this.profiles,
            predictors,
            clock,
            logger,
          },
          this.pods,
          this.inflight,
        ),
      );
    }
    this.scraper = new Scraper({
      clock,
      logger,
      registry,
      scrapeIntervalMs: config.pods.scrapeIntervalMs,
      scrapeTimeoutMs: config.pods.scrapeTimeoutMs,
      scrapeConcurrency: config.pods.scrapeConcurrency,
      targets: () => this.pods.scrapeTargets(),
      onOutcome: (address, outcome, fromUrl) => this.recordScrape(address, outcome, fromUrl),
    });
    const kubernetes = config.pods.kubernetes;
    if (kubernetes !== undefined) {
      this.discovery = new KubernetesDiscovery(options.kubeConfig ?? KubernetesDiscovery.defaultKubeConfig(), {
        ...kubernetes,
        clock,
        logger,
        registry,
        onPods: (pool, pods) => this.pods.replacePool("kubernetes", pool, pods),
      });
    }
    this.reports = this.registerMetrics(registry);
    this.accuracy = talliedHistogram(
      registry,
      "headroom_latency_actual_to_predicted_ratio",
      "Reported TTFT and TPOT over what the pick predicted (above 1: slower than predicted), by pool and quantity (ttft, tpot)",
      ["pool", "quantity"],
      [0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4],
    );
  }

  /** Loads the configured pods, publishes every pool's first snapshot and starts refreshing and scraping. */
  start(): void {
    const { config, clock } = this.options;
    for (const pool of config.pools) this.pods.replacePool("static", pool.name, staticPods(pool));
    this.pods.onChange((pools) => this.markDirty(pools));
    this.pods.onRemove((address) => {
      this.inflight.forgetPod(address);
      this.online?.forget(address);
    });
    this.refreshAll();
    this.stops.push(every(clock, config.predictors.refreshMs, () => this.refreshAll()));
    if (this.options.scrape !== false) this.scraper.start();
    this.discovery?.start();
  }

  /** A reloaded configuration's static pods replace the old ones; pushed deletions of config pods are forgotten. */
  reloadPods(pools: readonly PoolConfig[]): void {
    this.pods.clearTombstones();
    this.pods.replacePools(
      "static",
      pools.map((pool) => pool.name),
      pools.flatMap((pool) => staticPods(pool)),
    );
  }

  /** Pushed pods and Kubernetes sets arrive here; they win over the configuration's. */
  upsertPod(source: "push" | "kubernetes", spec: PodSpec): void {
    if (!this.pools.has(spec.pool)) throw new RangeError(`unknown pool ${spec.pool} (known: ${[...this.pools.keys()].join(", ")})`);
    this.pods.upsert(source, spec);
  }

  /**
   * A completion report: releases the request's in-flight load and, when it succeeded on the pods it
   * was sent to, teaches the online and remote predictors. Returns the request's pool, or undefined
   * for an unknown request id.
   */
  report(report: CompletionReport): string | undefined {
    // Only a successful report with times teaches; the others need just the pick's pool, not the pick.
    const teaches = report.ok && (report.ttftMs !== undefined || report.tpotMs !== undefined);
    const entry = teaches ? this.inflight.report(report.requestId) : undefined;
    const pool = teaches ? entry?.pool : this.inflight.reportPool(report.requestId);
    this.reports.slot(pool === undefined ? "unknown" : report.ok ? "ok" : "failed").n++;
    if (entry === undefined) return pool;
    const servedElsewhere = report.decode !== undefined && report.decode !== entry.decode && normalizeAddress(report.decode) !== normalizeAddress(entry.decode);
    if (servedElsewhere) return pool;
    const ratio = (actual: number | undefined, predicted: number) => (actual !== undefined && actual > 0 && predicted > 0 ? actual / predicted : undefined);
    const ttft = ratio(report.ttftMs, entry.predicted.ttftMs);
    const tpot = ratio(report.tpotMs, entry.predicted.tpotMs);
    if (ttft !== undefined) this.accuracy.labels(entry.pool, "ttft").observe(ttft);
    if (tpot !== undefined) this.accuracy.labels(entry.pool, "tpot").observe(tpot);
    for (const sample of learningSamples(entry.predicted, report)) {
      const prefill = sample.quantity === "prefill-ttft";
      // A decode pod's own prefill: compute alone, which its prefill queue never held.
      const localPrefill = prefill && entry.prefill === undefined;
      const address = prefill && entry.prefill !== undefined ? entry.prefill : entry.decode;
      const features = prefill ? (entry.prefillFeatures ?? entry.decodeFeatures) : entry.decodeFeatures;
      const tokens = prefill ? entry.prefillTokens : entry.inputTokens;
      if (this.kind(sample.quantity) === "online") {
        this.online?.observe({ address, quantity: sample.quantity, features, inputTokens: tokens, actualMs: sample.actualMs, localPrefill });
      }
      // The service's prefill model learns TTFTs from arrival on prefill pods, queue included; a local
      // prefill's compute on a decode pod is not one (its local prefill comes from the profile).
      if (this.kind(sample.quantity) === "remote" && !localPrefill) {
        const actual = sample.quantity === "decode-tpot" ? { tpotMs: sample.actualMs } : { ttftMs: sample.actualMs };
        this.remote?.addTrainingSample(sample.quantity, features, tokens, actual, Date.now());
      }
    }
    return pool;
  }

  /** Refreshes the pools whose pods changed, once, after the current event-loop turn. */
  private markDirty(pools: ReadonlySet<string>): void {
    for (const pool of pools) if (this.pools.has(pool)) this.dirty.add(pool);
    if (this.flushScheduled || this.dirty.size === 0) return;
    this.flushScheduled = true;
    this.options.clock.schedule(0, () => {
      this.flushScheduled = false;
      if (this.closed) return;
      for (const pool of this.dirty) this.pools.get(pool)?.refresh();
      this.dirty.clear();
    });
  }

  refreshAll(): void {
    this.inflight.expire();
    for (const pool of this.pools.values()) pool.refresh();
    this.dirty.clear();
  }

  /** One scrape of a pod: its registry state, in-flight reconciliation and histogram learning. */
  recordScrape(address: string, outcome: ScrapeOutcome, fromUrl?: string): void {
    const recorded = this.pods.recordScrape(address, outcome, fromUrl);
    if (!outcome.ok || recorded === undefined) return;
    this.inflight.onScrape(address, outcome.metrics.scrapedAtMs);
    const { pod, previous: before } = recorded;
    const pool = this.pools.get(pod.spec.pool);
    if (!this.online || !pool || !before) return;
    // Pods that send no completion reports still teach the online predictor through their histograms.
    const [features] = pool.features([pod]);
    const after = outcome.metrics;
    if (this.kind("prefill-ttft") === "online" && before.ttft && after.ttft) {
      this.online.observeHistogramDelta(address, "prefill-ttft", features, pool.means.isl, before.ttft, after.ttft);
    }
    if (this.kind("decode-tpot") === "online" && before.tpot && after.tpot) {
      this.online.observeHistogramDelta(address, "decode-tpot", features, pool.means.isl, before.tpot, after.tpot);
    }
  }

  private kind(quantity: Quantity): "profile" | "online" | "remote" {
    return kindOf(this.options.config, quantity);
  }

  private predictorFor(kind: "profile" | "online" | "remote"): Predictor {
    if (kind === "online") return this.online!;
    if (kind === "remote") return this.remote!;
    return this.profile;
  }

  private registerMetrics(registry: Registry): CounterTally<"result"> {
    const inflight = this.inflight;
    // Both from the statuses each pool's last snapshot published: what picks see, fail-open included.
    const pools = this.pools;
    const statusesOf = (pool: PoolState) => pool.latestPods?.statuses ?? [];
    registered(registry, "headroom_pods", Gauge, () =>
      new Gauge({
        name: "headroom_pods",
        help: "Pods per pool by the freshness of their metrics, as of the pool's last snapshot: fresh, pending (awaiting a first scrape), stale, failing, unscraped (no metrics URL)",
        labelNames: ["pool", "freshness"],
        registers: [registry],
        collect() {
          for (const [name, pool] of pools) {
            const counts: Record<Freshness, number> = { fresh: 0, pending: 0, stale: 0, failing: 0, unscraped: 0 };
            for (const status of statusesOf(pool)) counts[status.freshness]++;
            for (const [freshness, n] of Object.entries(counts)) this.set({ pool: name, freshness }, n);
          }
        },
      }),
    );
    registered(registry, "headroom_pods_eligible", Gauge, () =>
      new Gauge({
        name: "headroom_pods_eligible",
        help: "Pods per pool that picks may choose, as of the pool's last snapshot (not draining, metrics fresh or unscraped, or all the pool's pods on their last metrics when every scrape fails)",
        labelNames: ["pool"],
        registers: [registry],
        collect() {
          for (const [name, pool] of pools) this.set({ pool: name }, statusesOf(pool).filter((s) => s.eligible).length);
        },
      }),
    );
    registered(registry, "headroom_inflight_entries", Gauge, () =>
      new Gauge({
        name: "headroom_inflight_entries",
        help: "Picks awaiting their completion report or expiry",
        registers: [registry],
        collect() {
          this.set(inflight.size);
        },
      }),
    );
    registered(registry, "headroom_inflight_released_total", Counter, () =>
      new Counter({
        name: "headroom_inflight_released_total",
        help: "In-flight load released, by reason: report, scrape (the pod's own counts include it), expired, undelivered (the client went away before its answer) or pod_left (its pod left the registry)",
        labelNames: ["reason"],
        registers: [registry],
        collect() {
          this.reset();
          for (const [reason, n] of Object.entries(inflight.counters.released)) this.inc({ reason }, n);
        },
      }),
    );
    // A tally (src/metrics.ts): a stream reports every pick.
    return tallied(registry, "headroom_reports_total", "Completion reports by result: ok, failed, or unknown (no in-flight pick with that request id; ignored)", ["result"]);
  }

  close(): void {
    this.closed = true;
    for (const stop of this.stops) stop();
    this.scraper.close();
    this.discovery?.close();
    this.remote?.close();
    this.reports.close();
  }
}

function kindOf(config: HeadroomConfig, quantity: Quantity): "profile" | "online" | "remote" {
  const p = config.predictors;
  return quantity === "prefill-ttft" ? p.prefillTtft : quantity === "decode-ttft" ? p.decodeTtft : p.decodeTpot;
}

/**
 * What building the cluster checks beyond the schema, without starting anything: `profiles`, the
 * latency profiles read and fitted; `environment`, the remote predictor's URLs in `env`; `warnings`,
 * what serve logs about them. `headroom validate` reports the first as problems and the others as
 * warnings, as it may run where the server's environment is not.
 */
export function checkBeyondSchema(
  config: HeadroomConfig,
  env: Readonly<Record<string, string | undefined>>,
): { profiles: string[]; environment: string[]; warnings: string[] } {
  let profiles: string[] = [];
  try {
    loadProfiles(config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    profiles = err.problems;
  }
  const remote = checkRemoteConfig(config.predictors, env);
  return { profiles, environment: remote.problems, warnings: remote.warnings };
}

function loadProfiles(config: HeadroomConfig): Map<string, LatencyProfile> {
  const profiles = new Map<string, LatencyProfile>();
  if (!(BUILTIN_PROFILE in config.predictors.profiles)) profiles.set(BUILTIN_PROFILE, LatencyProfile.shipped(BUILTIN_PROFILE));
  const problems: string[] = [];
  for (const [name, path] of Object.entries(config.predictors.profiles)) {
    try {
      profiles.set(name, LatencyProfile.load(name, path));
    } catch (err) {
      problems.push(...(err instanceof ConfigError ? err.problems : [`predictors.profiles.${name}: ${(err as Error).message}`]));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return profiles;
}

function staticPods(pool: PoolConfig): PodSpec[] {
  return pool.pods.map((pod) => ({ ...pod, pool: pool.name }));
}

/**
 * Per-quantity actuals from a report. A TTFT covers prefill, the decode pod's wait and the transfer,
 * and only the whole is observed: what is left after the predicted wait and transfer is taken as the
 * prefill time (prefill is where the variance is: queues and prompt lengths). The decode wait is not
 * learned from reports — splitting the residual taught it prefill's errors (the simulator showed
 * factors of 0.25–0.35 on pods whose true wait was several times the profile's).
 */
export function learningSamples(p: PredictedTimes, report: CompletionReport): { quantity: Quantity; actualMs: number }[] {
  const out: { quantity: Quantity; actualMs: number }[] = [];
  if (report.ttftMs !== undefined && report.ttftMs > 0) {
    out.push({ quantity: "prefill-ttft", actualMs: report.ttftMs - p.decodeTtftMs - p.transferMs });
  }
  if (report.tpotMs !== undefined && report.tpotMs > 0) out.push({ quantity: "decode-tpot", actualMs: report.tpotMs });
  return out.filter((s) => s.actualMs > 0 && Number.isFinite(s.actualMs));
}
