// The planner evaluation (src/sim/planner-eval.ts) on short simulated days: deterministic for a seed,
// static allocations hold exactly their layouts, the planners (real, with a real ARIMA search thread)
// follow the load with the simulator actuator, workers count GPUs from the moment they are asked for,
// and no request is lost.

import { afterAll, describe, expect, it } from "vitest";
import { ArimaSearchThread } from "../src/planner/arima-search.js";
import { totalWorkers } from "../src/planner/types.js";
import { evaluateAllocation, PLANNER_EVAL_QUICK, staticLayouts, type PlannerEvalOptions } from "../src/sim/planner-eval.js";

const thread = new ArimaSearchThread();
afterAll(() => thread.close());

const SHORT: PlannerEvalOptions = { ...PLANNER_EVAL_QUICK, durationMs: 8 * 60_000, periodMs: 8 * 60_000, warmupMs: 60_000 };
const TP = { high: 2, medium: 1, low: 1 } as const;
const hours = (ms: number) => ms / 3_600_000;

describe("static allocations", () => {
  it("hold their layouts the whole run: GPU-hours are the layout's GPUs times the duration", async () => {
    const layouts = staticLayouts(SHORT);
    for (const allocation of ["static-peak", "static-mean"] as const) {
      const r = await evaluateAllocation(allocation, SHORT);
      for (const p of r.pools) {
        const s = layouts.find((l) => l.pool === p.pool)!;
        const gpus = totalWorkers(allocation === "static-peak" ? s.staticPeak : s.staticMean) * TP[p.pool as keyof typeof TP];
        expect(p.gpuHours).toBeCloseTo(gpus * hours(SHORT.durationMs), 9);
        expect(p.peakGpus).toBe(gpus);
        expect(p.released).toBe(0);
      }
    }
  });

  it("sizes static-peak for the peak and static-mean for the mean: more GPUs, better attainment", async () => {
    const peak = await evaluateAllocation("static-peak", SHORT);
    const mean = await evaluateAllocation("static-mean", SHORT);
    expect(peak.total.gpuHours).toBeGreaterThan(mean.total.gpuHours);
    expect(peak.total.attainment).toBeGreaterThan(mean.total.attainment);
    // Every scored request is accounted for, finished or not.
    expect(peak.total.requests).toBe(mean.total.requests);
    expect(peak.pools.every((p) => p.unfinished === 0)).toBe(true);
  });
});

describe("the planners with the simulator actuator", () => {
  it("are deterministic for a seed", async () => {
    const a = await evaluateAllocation("planner", SHORT, thread.search);
    const b = await evaluateAllocation("planner", SHORT, thread.search);
    expect(b).toEqual(a);
    const other = await evaluateAllocation("planner", { ...SHORT, seed: SHORT.seed + 1 }, thread.search);
    expect(other.total.requests).not.toBe(a.total.requests);
  });

  it("follow the load: workers start and are released, GPU use stays between the static allocations", async () => {
    const planner = await evaluateAllocation("planner", SHORT, thread.search);
    const peak = await evaluateAllocation("static-peak", SHORT);
    const mean = await evaluateAllocation("static-mean", SHORT);
    const scaled = planner.pools.filter((p) => p.pool !== "low");
    expect(scaled.some((p) => p.released > 0)).toBe(true);
    expect(planner.total.gpuHours).toBeLessThan(peak.total.gpuHours);
    expect(planner.total.attainment).toBeGreaterThan(mean.total.attainment);
    // The low pool's one worker is all it may have.
    const low = planner.pools.find((p) => p.pool === "low")!;
    expect(low.peakGpus).toBe(1);
    expect(planner.total.requests).toBe(peak.total.requests);
  });

  it("count a worker's GPUs from the moment it is asked for, though it serves only after its start-up delay", async () => {
    // Workers asked for never start within the run: the pools serve with what they began with.
    const slow = await evaluateAllocation("planner", { ...SHORT, startupDelayMs: 60 * 60_000 }, thread.search);
    const fast = await evaluateAllocation("planner", SHORT, thread.search);
    const slowHigh = slow.pools.find((p) => p.pool === "high")!;
    const fastHigh = fast.pools.find((p) => p.pool === "high")!;
    expect(slowHigh.started).toBeGreaterThan(1);
    expect(slowHigh.peakGpus).toBeGreaterThan(2);
    expect(slowHigh.attainment).toBeLessThan(fastHigh.attainment);
  });
});
