// The `headroom` policy: the product's engine pieces in virtual time. A Cluster built from a headroom
// configuration (the product's defaults plus the simulated cluster's pods and topology) takes the
// simulator's scrapes and completion reports and refreshes its pool snapshot on the clock; each pick
// runs the WebAssembly kernel synchronously on the latest snapshot and is accounted with recordPick,
// exactly as the engine's inline path does (src/engine/engine.ts), one request per batch.

import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { stringify } from "yaml";
import { parseConfig } from "../config/load.js";
import { BUILTIN_PROFILE } from "../config/schema.js";
import { Cluster } from "../engine/cluster.js";
import type { KernelHold, PoolState } from "../engine/pool-state.js";
import { TwinKernel } from "../kernel/twin.js";
import type { Outcome, PickRequest } from "../kernel/types.js";
import { WasmKernel } from "../kernel/wasm.js";
import { silentLogger } from "../log.js";
import type { PodMetrics } from "../pods/types.js";
import { SHIPPED_PROFILE_CSV } from "../predictors/latency-profile.js";
import type { Job, Placement } from "./pods.js";
import type { Policy, PolicyContext } from "./policies.js";
import type { SimPodSpec } from "./scenario.js";
import type { SimRequest } from "./workload.js";

export const POOL = "sim";

export type PredictorKind = "profile" | "online";

export interface HeadroomVariant {
  name: string;
  predictors: { prefillTtft: PredictorKind; decodeTtft: PredictorKind; decodeTpot: PredictorKind };
  /**
   * Told each pod's true speed: pods with time factors get a profile scaled by them (a reference for
   * what a correct profile is worth, not something a deployment knows).
   */
  informed?: boolean;
  /** Online-predictor settings other than the product's defaults. */
  online?: Record<string, unknown>;
}

const PROFILE_PREDICTORS = { prefillTtft: "profile", decodeTtft: "profile", decodeTpot: "profile" } as const;
const ONLINE_PREDICTORS = { prefillTtft: "online", decodeTtft: "online", decodeTpot: "online" } as const;

/**
 * The labelled variants. `headroom` is the product's defaults; `headroom-online` the same with the
 * online predictor (its default p90 quantile) for all three quantities; `headroom-online-p50` the online
 * predictor tracking the median instead; `headroom-informed` knows each pod's true speed.
 */
export const HEADROOM_VARIANTS: Readonly<Record<string, HeadroomVariant>> = Object.freeze({
  headroom: { name: "headroom", predictors: PROFILE_PREDICTORS },
  "headroom-online": { name: "headroom-online", predictors: ONLINE_PREDICTORS },
  "headroom-online-p50": { name: "headroom-online-p50", predictors: ONLINE_PREDICTORS, online: { quantile: 0.5 } },
  "headroom-informed": { name: "headroom-informed", predictors: PROFILE_PREDICTORS, informed: true },
});

/** The headroom configuration (as plain data) for a scenario's cluster. */
export function headroomConfigData(ctx: PolicyContext, variant: HeadroomVariant): Record<string, unknown> {
  const c = ctx.scenario.cluster;
  const profiles: Record<string, string> = { ...c.profiles };
  const podProfile = (pod: SimPodSpec): string | undefined => {
    if (variant.informed && (pod.prefillTimeFactor !== 1 || pod.decodeTimeFactor !== 1)) {
      const name = `${pod.profile}-x${pod.prefillTimeFactor}-x${pod.decodeTimeFactor}`.replace(/[^A-Za-z0-9._-]/g, "_");
      profiles[name] ??= scaledProfile(pod.profile === BUILTIN_PROFILE ? SHIPPED_PROFILE_CSV : c.profiles[pod.profile], pod.prefillTimeFactor, pod.decodeTimeFactor);
      return name;
    }
    return pod.profile === BUILTIN_PROFILE ? undefined : pod.profile;
  };
  const reference = ctx.profiles.get(c.profile)!;
  return {
    topology: { kvBytesPerToken: reference.hardware.kvBytesPerToken, bandwidthGBps: c.bandwidthGBps },
    predictors: { ...variant.predictors, profiles, tpEfficiency: c.tpEfficiency, online: variant.online ?? {} },
    pods: { scrapeIntervalMs: c.scrape.intervalMs },
    workers: { threads: 0 },
    pools: [
      {
        name: POOL,
        sloLevel: "medium",
        expected: { isl: Math.round(ctx.capacity.meanInputTokens), osl: Math.round(ctx.capacity.meanOutputTokens) },
        tp: 1,
        maxGpus: ctx.pods.reduce((sum, p) => sum + p.tp, 0),
        gpuMemoryUtilization: c.gpuMemoryUtilization,
        pods: ctx.pods.map((pod) => ({
          address: pod.address,
          role: pod.role,
          node: pod.node,
          rack: pod.rack,
          tp: pod.tp,
          profile: podProfile(pod),
          metricsUrl: `http://sim/${pod.name}/metrics`,
        })),
      },
    ],
  };
}

let scaledDir: string | null = null;
const scaledFiles = new Map<string, string>();

/** A copy of a profile CSV (and its meta file) with prefill rows x prefillFactor and decode rows x decodeFactor. */
function scaledProfile(csvPath: string, prefillFactor: number, decodeFactor: number): string {
  const key = `${csvPath}|${prefillFactor}|${decodeFactor}`;
  const known = scaledFiles.get(key);
  if (known !== undefined) return known;
  scaledDir ??= mkdtempSync(join(tmpdir(), "headroom-sim-"));
  const path = join(scaledDir, `scaled-${scaledFiles.size}.csv`);
  const lines = readFileSync(csvPath, "utf8").split(/\r?\n/);
  const out = lines.map((line, i) => {
    const cells = line.split(",");
    if (i === 0 || cells.length < 4) return line;
    const factor = cells[0].trim() === "prefill" ? prefillFactor : decodeFactor;
    cells[3] = String(Number(cells[3]) * factor);
    return cells.join(",");
  });
  writeFileSync(path, out.join("\n"));
  try {
    copyFileSync(csvPath.replace(/\.csv$/i, ".meta.json"), path.replace(/\.csv$/, ".meta.json"));
  } catch {
    // No meta file: the scaled profile takes the hardware defaults, as the original does.
  }
  scaledFiles.set(key, path);
  return path;
}

export class HeadroomPolicy implements Policy {
  readonly name: string;
  readonly cluster: Cluster;
  private readonly pool: PoolState;
  private readonly kernel: WasmKernel | TwinKernel;
  private readonly held: KernelHold = { version: -1, loadSeq: -1 };
  private readonly podIndex = new Map<string, number>();
  private readonly outcomes = new Map<Outcome | "local", number>();

  constructor(private readonly ctx: PolicyContext, variant: HeadroomVariant) {
    this.name = variant.name;
    const { config } = parseConfig(stringify(headroomConfigData(ctx, variant)));
    this.cluster = new Cluster({ config, clock: ctx.clock, logger: silentLogger, registry: new Registry(), scrape: false, env: {} });
    this.pool = this.cluster.pools.get(POOL)!;
    try {
      this.kernel = new WasmKernel(config.optimizer, config.topology, { maxPods: Math.max(16, ctx.pods.length) });
    } catch {
      // The twin is the engine's own fallback when WebAssembly is unavailable; it picks identically.
      this.kernel = new TwinKernel(config.optimizer, config.topology);
    }
    ctx.pods.forEach((pod, i) => this.podIndex.set(pod.address.toLowerCase(), i));
    this.cluster.start();
  }

  observe(pod: number, metrics: PodMetrics): void {
    this.cluster.recordScrape(this.ctx.pods[pod].address, { ok: true, metrics });
  }

  /** Publishes snapshots now, after the first scrapes, so the pods are candidates from the first pick. */
  ready(): void {
    this.cluster.refreshAll();
  }

  pick(req: SimRequest): Placement | null {
    const pool = this.pool;
    const snap = pool.snapshot;
    if (snap === null) return null;
    pool.syncKernel(this.kernel, this.held);
    const request: PickRequest = {
      inputTokens: req.inputTokens,
      outputTokens: req.outputTokens,
      prefixHit: 0,
      sloTtftMs: req.sloTtftMs,
      sloTpotMs: req.sloTpotMs,
      priority: 0,
      seed: req.seed,
    };
    const [r] = this.kernel.pick([request]);
    this.count(r.outcome);
    if (r.decode < 0) return null;
    const pods = pool.podsAt(r.version);
    if (pods === undefined) return null;
    pool.recordPick(req.id, request, r);
    if (r.prefill < 0) this.count("local");
    return {
      prefill: r.prefill < 0 ? -1 : this.index(pods.addresses[r.prefill]),
      decode: this.index(pods.addresses[r.decode]),
      predicted: { prefillTtftMs: r.prefillTtftMs, decodeTtftMs: r.decodeTtftMs, transferMs: r.transferMs, ttftMs: r.ttftMs, tpotMs: r.tpotMs },
    };
  }

  complete(job: Job): void {
    const { req } = job;
    const ttftMs = job.firstTokenMs! - job.dispatchMs;
    const tpotMs = req.outputTokens > 1 ? (job.doneMs! - job.firstTokenMs!) / (req.outputTokens - 1) : undefined;
    this.cluster.report({ requestId: req.id, ok: true, ttftMs, tpotMs, inputTokens: req.inputTokens, outputTokens: req.outputTokens });
  }

  /** A failed request releases its in-flight load and teaches nothing, as a gateway's failure report does. */
  fail(job: Job): void {
    this.cluster.report({ requestId: job.req.id, ok: false });
  }

  stats(): Record<string, number> {
    return Object.fromEntries(this.outcomes);
  }

  close(): void {
    this.cluster.close();
  }

  private index(address: string): number {
    const i = this.podIndex.get(address.toLowerCase());
    if (i === undefined) throw new RangeError(`the engine picked ${address}, which the simulator does not know`);
    return i;
  }

  private count(key: Outcome | "local"): void {
    this.outcomes.set(key, (this.outcomes.get(key) ?? 0) + 1);
  }
}
