// Replaying load curves through a pool's planner in virtual time (what bench:planner prints): on a
// sinusoid (period 150 s, five 30 s intervals) ARIMA forecasts better than the last value and leaves
// fewer intervals under-provisioned; a step costs the constant predictor one interval.

import { afterAll, describe, expect, it } from "vitest";
import { ArimaSearchThread } from "../src/planner/arima-search.js";
import { replay, sineLoad, stepLoad } from "../src/planner/replay.js";
import { layoutCapacityPerS, workerCapacity } from "../src/planner/sizing.js";
import { pool, PROFILE } from "./fixtures/planner-pools.js";

const thread = new ArimaSearchThread();
afterAll(() => thread.close());

const medium = (loadPredictor: "constant" | "arima") =>
  pool("medium", { planner: { adjustmentIntervalMs: 30_000, loadPredictor, burstProtection: false } });

describe("replay", () => {
  it("scores ARIMA against the last value on a sinusoid", async () => {
    const load = sineLoad(2, 30);
    const run = (p: "constant" | "arima") => replay({ pool: medium(p), profile: PROFILE, tpEfficiency: 0.85, load, durationMs: 1_200_000, arimaSearcher: thread.search });
    const constant = await run("constant");
    const arima = await run("arima");
    expect(constant).toMatchObject({ pool: "medium", predictor: "constant", intervals: 40 });
    expect(arima.mape).toBeLessThan(constant.mape * 0.75);
    expect(arima.underProvisionedIntervals).toBeLessThan(constant.underProvisionedIntervals);
  });

  it("costs the constant predictor the interval after a step, and GPU time after it", async () => {
    const r = await replay({ pool: medium("constant"), profile: PROFILE, tpEfficiency: 0.85, load: stepLoad(5, 25, 300_000), durationMs: 600_000 });
    expect(r.intervals).toBe(20);
    expect(r.underProvisionedIntervals).toBe(1);
    // 5 req/s fits the both worker; 25 req/s needs 2 prefill workers beside it (1.52 workers of prefill).
    expect(r.gpuHours).toBeGreaterThan((300 * 1 + 300 * 2) / 3600);
    expect(r.gpuHours).toBeLessThanOrEqual((300 * 1 + 300 * 3) / 3600);
  });

  it("measures a layout's capacity without the buffer", () => {
    const cap = workerCapacity(PROFILE, { tp: 1, tpEfficiency: 0.85, gpuMemoryUtilization: 0.9, itlMs: 50, bufferRatio: 1 }, 2000, 150);
    // One both worker: 1 / (2000 / 38,870 + 150 / 7,844) = 14.2 req/s.
    expect(layoutCapacityPerS({ prefill: 0, decode: 0, both: 1 }, cap, 2000, 150)).toBeCloseTo(1 / (2000 / cap.prefillTokensPerS + 150 / cap.decodeTokensPerS), 9);
    // 2 prefill workers bound it at 2 x 38,870 / 2000 = 38.9 req/s.
    expect(layoutCapacityPerS({ prefill: 2, decode: 0, both: 1 }, cap, 2000, 150)).toBeCloseTo((2 * cap.prefillTokensPerS) / 2000, 9);
  });
});
