// The planners' Prometheus metrics (headroom_planner_*), registered once on the app's Registry and
// shared by every pool's planner.

import { Counter, Gauge, type Registry } from "prom-client";
import { registered } from "../metrics.js";

function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Gauge<L> {
  return registered(registry, name, Gauge<L>, () => new Gauge<L>({ name, help, labelNames, registers: [registry] }));
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return registered(registry, name, Counter<L>, () => new Counter<L>({ name, help, labelNames, registers: [registry] }));
}

export class PlannerMetrics {
  readonly desiredWorkers: Gauge<"pool" | "role">;
  readonly currentWorkers: Gauge<"pool" | "role">;
  readonly desiredGpus: Gauge<"pool" | "priority">;
  readonly budgetGpus: Gauge<never>;
  readonly predicted: Gauge<"pool" | "quantity">;
  readonly observedLatency: Gauge<"pool" | "quantity">;
  readonly violationRatio: Gauge<"pool">;
  readonly attainment: Gauge<"pool">;
  readonly utilization: Gauge<"pool" | "kind">;
  readonly tokensPerGpuSecond: Gauge<"pool">;
  readonly gpuSeconds: Counter<"pool">;
  readonly cost: Counter<"pool">;
  readonly decisions: Counter<"pool" | "reason">;
  readonly actuatorFailures: Counter<"pool" | "actuator">;
  readonly skipped: Counter<"pool" | "cause">;

  constructor(registry: Registry) {
    this.desiredWorkers = gauge(registry, "headroom_planner_desired_workers", "Workers the planner last decided on, by pool and role", ["pool", "role"]);
    this.currentWorkers = gauge(registry, "headroom_planner_current_workers", "Workers of the last decision the actuator applied, by pool and role", ["pool", "role"]);
    this.desiredGpus = gauge(registry, "headroom_planner_desired_gpus", "GPUs of the last decision (workers x TP), by pool and its sloPriority", ["pool", "priority"]);
    this.budgetGpus = gauge(registry, "headroom_planner_budget_gpus", "The cluster's GPU budget the planners share", []);
    this.predicted = gauge(registry, "headroom_planner_predicted_load", "Predicted next-interval load: requests_per_second, isl_tokens, osl_tokens", ["pool", "quantity"]);
    this.observedLatency = gauge(registry, "headroom_planner_observed_latency_seconds", "TTFT and TPOT at the pool's percentile over the last interval", ["pool", "quantity"]);
    this.violationRatio = gauge(registry, "headroom_planner_violation_ratio", "Completions that missed a target over the last interval", ["pool"]);
    this.attainment = gauge(registry, "headroom_planner_slo_attainment_ratio", "Completions that met both targets over the last interval", ["pool"]);
    this.utilization = gauge(registry, "headroom_planner_utilization_ratio", "Pod utilization the planner saw: prefill_queue, kv", ["pool", "kind"]);
    this.tokensPerGpuSecond = gauge(
      registry,
      "headroom_planner_tokens_per_gpu_second",
      "Input plus output tokens per second per GPU of the applied layout over the last interval (TP efficiency)",
      ["pool"],
    );
    this.gpuSeconds = counter(registry, "headroom_planner_gpu_seconds_total", "GPU time of the applied layouts (divide by 3600 for GPU-hours)", ["pool"]);
    this.cost = counter(registry, "headroom_planner_cost_total", "GPU time of the applied layouts at cluster.gpuHourPrice", ["pool"]);
    this.decisions = counter(registry, "headroom_planner_decisions_total", "Layout changes decided, by pool and reason", ["pool", "reason"]);
    this.actuatorFailures = counter(registry, "headroom_planner_actuator_failures_total", "Failed attempts to apply a decision, by pool and actuator", ["pool", "actuator"]);
    this.skipped = counter(registry, "headroom_planner_skipped_intervals_total", "Intervals in which a planner did not size, by cause", ["pool", "cause"]);
  }
}
