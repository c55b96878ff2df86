// A fleet of simulated pods on loopback (`headroom pod-sim`, the embedded demo, the end-to-end tests):
// one HTTP server per pod, sharing the shipped profile, each with its own queues. The fleet can say
// which headroom pool each pod belongs to, as configuration.

import { BUILTIN_PROFILE, DEFAULTS } from "../config/schema.js";
import { LatencyProfile } from "../predictors/latency-profile.js";
import { SimulatedPod, type PodSimEnvironment, type PodSimRole, type PodSimSpec } from "./pod.js";

export interface FleetPodSpec extends PodSimSpec {
  /** The headroom pool the pod serves (config snippets and the demo). */
  pool?: string;
}

export interface FleetOptions {
  pods: readonly FleetPodSpec[];
  host?: string;
  model?: string;
  reportUrl?: string;
}

export interface PodFleet {
  pods: readonly SimulatedPod[];
  /** Pods by the pool they serve. */
  byPool(pool: string): SimulatedPod[];
  /** The `pools` section of a headroom configuration for these pods (scraped through their /metrics). */
  poolsConfig(): { sloLevel: string; pods: { address: string; role: PodSimRole; tp: number; metricsUrl: string; rack: string; node: string }[] }[];
  /** Points the pods' completion reports at headroom (reports are off until then). */
  reportTo(url: string): void;
  close(): Promise<void>;
}

export const POD_SIM_MODEL = "meta-llama/Llama-3.1-8B-Instruct";

/** The demo's cluster: the three default pools, a few pods each. */
export const DEMO_FLEET: readonly FleetPodSpec[] = [
  { name: "high-p0", role: "prefill", pool: "high", tp: 2 },
  { name: "high-d0", role: "decode", pool: "high", tp: 2 },
  { name: "medium-p0", role: "prefill", pool: "medium" },
  { name: "medium-p1", role: "prefill", pool: "medium", prefillTimeFactor: 1.3 },
  { name: "medium-d0", role: "decode", pool: "medium" },
  { name: "low-b0", role: "both", pool: "low" },
];

export async function startPodFleet(options: FleetOptions): Promise<PodFleet> {
  const names = new Set<string>();
  for (const p of options.pods) {
    if (names.has(p.name)) throw new RangeError(`pod name ${p.name} is used twice`);
    names.add(p.name);
  }
  const env: PodSimEnvironment = {
    host: options.host ?? "127.0.0.1",
    profile: LatencyProfile.shipped(BUILTIN_PROFILE),
    model: options.model ?? POD_SIM_MODEL,
    tpEfficiency: DEFAULTS.predictors.tpEfficiency,
    gpuMemoryUtilization: 0.9,
    prefillTokenBudget: 8192,
    transferOverheadMs: 1,
    bandwidthGBps: 50,
    reportUrl: options.reportUrl,
  };
  const pods = options.pods.map((spec) => new SimulatedPod(spec, env));
  const started: SimulatedPod[] = [];
  try {
    for (const pod of pods) {
      await pod.listen();
      started.push(pod);
    }
  } catch (err) {
    await Promise.all(started.map((p) => p.close()));
    throw err;
  }
  const poolOf = new Map(options.pods.map((spec, i) => [pods[i], spec.pool ?? "medium"]));
  return {
    pods,
    byPool: (pool) => pods.filter((p) => poolOf.get(p) === pool),
    poolsConfig() {
      const pools = [...new Set(poolOf.values())];
      return pools.map((sloLevel) => ({
        sloLevel,
        pods: pods
          .filter((p) => poolOf.get(p) === sloLevel)
          .map((p) => ({ address: p.address, role: p.spec.role, tp: p.spec.tp, metricsUrl: p.metricsUrl, rack: "r0", node: p.spec.name })),
      }));
    },
    reportTo(url) {
      env.reportUrl = url;
    },
    close: async () => {
      await Promise.all(pods.map((p) => p.close()));
    },
  };
}
