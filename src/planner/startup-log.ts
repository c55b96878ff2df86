// The block each planner logs at start-up (SPEC.md §6): level and priority, description, targets,
// expected workload, TP, GPU memory utilization, scaling behaviour and why this TP, with the profile's
// numbers behind that last line.

import type { LatencyProfile } from "../predictors/latency-profile.js";
import { scaleDownCooldownMs, type PlannedPool, type PlannerTuning } from "./planner.js";
import { workerCapacity, type SizingParams } from "./sizing.js";

/** How eagerly a pool scales, from the utilization at which it steps up. */
export function aggressiveness(scaleUpThreshold: number): "aggressive" | "balanced" | "conservative" {
  return scaleUpThreshold <= 0.5 ? "aggressive" : scaleUpThreshold <= 0.75 ? "balanced" : "conservative";
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => `${Number.isInteger(n) || n >= 100 ? int(n) : n.toFixed(1)} ms`;
const seconds = (n: number) => `${n % 1000 === 0 ? n / 1000 : (n / 1000).toFixed(1)} s`;

export function whyThisTp(pool: PlannedPool, profile: LatencyProfile, tpEfficiency: number): string {
  const params = (tp: number): SizingParams => ({
    tp,
    tpEfficiency,
    gpuMemoryUtilization: pool.gpuMemoryUtilization,
    itlMs: pool.targets.tpotMs,
    bufferRatio: pool.planner.bufferRatio,
  });
  const { isl, osl } = pool.expected;
  const at = workerCapacity(profile, params(pool.tp), isl, osl);
  const parts = [`TP=${pool.tp} prefills ${int(isl)} tokens in ${ms(at.prefillMs)}`];
  const one = pool.tp > 1 ? workerCapacity(profile, params(1), isl, osl) : null;
  if (one !== null) parts[0] += ` (TP=1: ${ms(one.prefillMs)})`;
  parts[0] += ` of the ${ms(pool.targets.ttftMs)} TTFT target`;
  if (at.prefillMs > pool.targets.ttftMs) parts[0] += ", which prefill alone misses";
  const decode = at.itlReachable
    ? `decodes up to batch ${at.decodeBatch}${at.kvLimited ? " (KV-bound)" : ""} within the ${ms(pool.targets.tpotMs)} ITL`
    : `cannot meet the ${ms(pool.targets.tpotMs)} ITL even at batch 1`;
  let throughput = `${int(at.decodeTokensPerS)} output tokens/s per worker, ${int(at.decodeTokensPerS / pool.tp)} per GPU`;
  if (one !== null) throughput += `; TP=1: ${int(one.decodeTokensPerS)} per GPU`;
  const workers = Math.floor(pool.maxGpus / pool.tp);
  return `${parts[0]} and ${decode} (${throughput}); ${pool.maxGpus} GPUs allow ${workers} worker${workers === 1 ? "" : "s"} of TP=${pool.tp}`;
}

export function scalingBehaviour(pool: PlannedPool, tuning: Pick<PlannerTuning, "cooldownMs">): string {
  const p = pool.planner;
  const parts = [
    `${aggressiveness(p.scaleUpThreshold)}: scale up at ${Math.round(p.scaleUpThreshold * 100)}% utilization or over ${Math.round(p.violationsAllowed * 100)}% violations`,
    `buffer ${p.bufferRatio.toFixed(2)}`,
    p.proactive ? `proactive (${p.loadPredictor} load predictor)` : `reactive (observed load; ${p.loadPredictor} predictor for reference)`,
  ];
  if (p.burstProtection) parts.push("burst protection");
  if (p.costOptimization) parts.push("cost optimisation (fewer workers, earlier scale-down)");
  parts.push(`adjust every ${seconds(p.adjustmentIntervalMs)}, scale down one step after ${seconds(scaleDownCooldownMs(p, tuning))}`);
  return parts.join(", ");
}

/** The block as lines (the first names the pool) and as structured fields. */
export function startupBlock(
  pool: PlannedPool,
  profile: LatencyProfile,
  tpEfficiency: number,
  tuning: Pick<PlannerTuning, "cooldownMs">,
  actuator: string,
): { lines: string[]; fields: Record<string, unknown> } {
  const p = pool.planner;
  const scaling = scalingBehaviour(pool, tuning);
  const whyTp = whyThisTp(pool, profile, tpEfficiency);
  const lines = [
    `SLA planner initialized for pool ${pool.name}:`,
    `  SLO level: ${pool.sloLevel.toUpperCase()} (priority ${pool.sloPriority})`,
    `  Description: ${pool.description || "(none)"}`,
    `  SLO targets: TTFT=${ms(pool.targets.ttftMs)}, ITL=${ms(pool.targets.tpotMs)} at p${p.percentile}, ${Math.round(p.violationsAllowed * 100)}% violations allowed`,
    `  Expected workload: ISL=${pool.expected.isl}, OSL=${pool.expected.osl}`,
    `  Tensor parallelism: TP=${pool.tp} for prefill, decode and both workers, at most ${pool.maxGpus} GPUs`,
    `  GPU memory utilization: ${pool.gpuMemoryUtilization}`,
    `  Scaling behavior: ${scaling}`,
    `  TP configuration: ${whyTp}`,
    `  Actuator: ${actuator}`,
  ];
  return {
    lines,
    fields: {
      pool: pool.name,
      sloLevel: pool.sloLevel,
      sloPriority: pool.sloPriority,
      description: pool.description,
      targets: pool.targets,
      expected: pool.expected,
      tp: pool.tp,
      maxGpus: pool.maxGpus,
      gpuMemoryUtilization: pool.gpuMemoryUtilization,
      scaling,
      whyTp,
      actuator,
    },
  };
}
