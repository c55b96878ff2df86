// A scenario's nominal capacity, computed from the latency profile, which fixes its rate grid:
// - a prefill pod serves 1000 / E[prefillMs(ISL) x prefill time factor / TP speed-up] requests/s
//   (E over the workload's prompt lengths): what a saturated simulated pod sustains, since a batch
//   costs the sum of its prompts' times (pods.ts, batchPrefillMs);
// - a decode pod holds n = floor(KV capacity / E[ISL + OSL]) sequences (KV is reserved for the whole
//   request) and serves n / (stepMs(n, n x (E[ISL] + E[OSL] / 2)) x decode time factor / speed-up x E[OSL])
//   requests/s: n tokens per iteration, E[OSL] iterations per request, at the mean context half-way
//   through a typical output;
// - nominal capacity = min(sum over prefill pods, sum over decode pods). SLOs play no part: 100 % is
//   the rate the pods could sustain, not the rate at which they meet the SLOs.

import { BUILTIN_PROFILE } from "../config/schema.js";
import { LatencyProfile } from "../predictors/latency-profile.js";
import { tpSpeedup } from "../predictors/profile.js";
import { Rng } from "./random.js";
import { rateFractions, type Scenario } from "./scenario.js";
import { drawLength, readTrace, type TraceRow } from "./workload.js";

/** Draws of the length distributions behind the expectations (fixed stream, so capacity is a constant). */
export const CAPACITY_SAMPLES = 200_000;

export interface Capacity {
  meanInputTokens: number;
  meanOutputTokens: number;
  prefillRps: number;
  decodeRps: number;
  nominalRps: number;
  pods: { name: string; role: "prefill" | "decode"; rps: number; concurrency?: number; stepMs?: number }[];
}

/** The shipped profile and the scenario's own, by name. */
export function loadProfiles(scenario: Scenario): Map<string, LatencyProfile> {
  const profiles = new Map<string, LatencyProfile>();
  profiles.set(BUILTIN_PROFILE, LatencyProfile.shipped(BUILTIN_PROFILE));
  for (const [name, path] of Object.entries(scenario.cluster.profiles)) profiles.set(name, LatencyProfile.load(name, path));
  return profiles;
}

/** Samples of (ISL, OSL): the trace's rows, or draws of the scenario's distributions. */
function lengthSamples(scenario: Scenario, trace?: readonly TraceRow[]): { isl: Float64Array; osl: Float64Array } {
  const w = scenario.workload;
  if (w.arrivals.process === "trace") {
    const rows = trace ?? readTrace(w.traceFile ?? w.arrivals.file);
    return { isl: Float64Array.from(rows, (r) => r.inputTokens), osl: Float64Array.from(rows, (r) => r.outputTokens) };
  }
  const rngIsl = Rng.stream(scenario.seed, "capacity-isl");
  const rngOsl = Rng.stream(scenario.seed, "capacity-osl");
  const isl = new Float64Array(CAPACITY_SAMPLES);
  const osl = new Float64Array(CAPACITY_SAMPLES);
  for (let i = 0; i < CAPACITY_SAMPLES; i++) {
    isl[i] = drawLength(rngIsl, w.inputTokens);
    osl[i] = drawLength(rngOsl, w.outputTokens);
  }
  return { isl, osl };
}

export function nominalCapacity(scenario: Scenario, profiles: ReadonlyMap<string, LatencyProfile>, trace?: readonly TraceRow[]): Capacity {
  const { isl, osl } = lengthSamples(scenario, trace);
  const mean = (a: Float64Array) => a.reduce((s, x) => s + x, 0) / a.length;
  const meanIsl = mean(isl);
  const meanOsl = mean(osl);
  const c = scenario.cluster;
  const prefillMean = new Map<string, number>();
  const pods: Capacity["pods"] = [];
  let prefillRps = 0;
  let decodeRps = 0;
  for (const pod of c.pods) {
    const profile = profiles.get(pod.profile)!;
    const speedup = tpSpeedup(pod.tp, c.tpEfficiency);
    if (pod.role === "prefill") {
      let meanMs = prefillMean.get(pod.profile);
      if (meanMs === undefined) {
        meanMs = isl.reduce((s, x) => s + profile.prefillMs(x), 0) / isl.length;
        prefillMean.set(pod.profile, meanMs);
      }
      const rps = 1000 / ((meanMs * pod.prefillTimeFactor) / speedup);
      prefillRps += rps;
      pods.push({ name: pod.name, role: "prefill", rps });
    } else {
      const kv = pod.kvCapacityTokens ?? profile.kvCapacityTokens(pod.tp, c.gpuMemoryUtilization);
      const n = Math.max(1, Math.floor(kv / (meanIsl + meanOsl)));
      const stepMs = (profile.stepMs(n, n * (meanIsl + meanOsl / 2)) * pod.decodeTimeFactor) / speedup;
      const rps = (1000 * n) / (stepMs * meanOsl);
      decodeRps += rps;
      pods.push({ name: pod.name, role: "decode", rps, concurrency: n, stepMs });
    }
  }
  return {
    meanInputTokens: meanIsl,
    meanOutputTokens: meanOsl,
    prefillRps,
    decodeRps,
    nominalRps: Math.min(prefillRps, decodeRps),
    pods,
  };
}

/** The swept rates (requests/s), rounded to 0.01, with their fractions of nominal capacity. */
export function rateGrid(scenario: Scenario, capacity: Capacity): { fraction: number; rateRps: number }[] {
  return rateFractions(scenario).map((fraction) => ({ fraction, rateRps: Math.round(fraction * capacity.nominalRps * 100) / 100 }));
}
