// Replays a load curve through one pool's planner in virtual time (for `bench:planner` and tests): the
// planner sees the arrivals and completions of the curve, and each interval is scored on how well the
// predictor forecast its rate (MAPE) and whether the layout decided before it could serve it.

import { Registry } from "prom-client";
import { ManualClock } from "../clock.js";
import { silentLogger } from "../log.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import { AdvisoryActuator } from "./actuators.js";
import type { ArimaSearcher } from "./arima-search.js";
import type { PlannedPool } from "./planner.js";
import { Planners } from "./planners.js";
import { layoutCapacityPerS, workerCapacity } from "./sizing.js";

/** Requests per second at time tMs. */
export type LoadCurve = (tMs: number) => number;

/** A sinusoid between minPerS and maxPerS (the public SLA planner benchmark uses a 150 s period). */
export function sineLoad(minPerS: number, maxPerS: number, periodMs = 150_000): LoadCurve {
  const mid = (minPerS + maxPerS) / 2;
  const amplitude = (maxPerS - minPerS) / 2;
  return (t) => mid + amplitude * Math.sin((2 * Math.PI * t) / periodMs);
}

/** fromPerS until atMs, toPerS after. */
export function stepLoad(fromPerS: number, toPerS: number, atMs: number): LoadCurve {
  return (t) => (t < atMs ? fromPerS : toPerS);
}

export interface ReplayOptions {
  pool: PlannedPool;
  profile: LatencyProfile;
  tpEfficiency: number;
  load: LoadCurve;
  durationMs: number;
  isl?: number;
  osl?: number;
  gpuHourPrice?: number;
  /** The ARIMA search (a shared ArimaSearchThread's `search`); the planners start their own otherwise. */
  arimaSearcher?: ArimaSearcher;
}

export interface ReplayResult {
  pool: string;
  predictor: string;
  intervals: number;
  /** Mean absolute percentage error of the predicted against the actual rate, over intervals with load. */
  mape: number;
  gpuHours: number;
  /** Intervals whose actual load exceeded what the layout decided before them could serve. */
  underProvisionedIntervals: number;
}

/** Requests arrive evenly within each second and complete within the pool's targets. */
export async function replay(o: ReplayOptions): Promise<ReplayResult> {
  const { pool } = o;
  const isl = o.isl ?? pool.expected.isl;
  const osl = o.osl ?? pool.expected.osl;
  const intervalMs = pool.planner.adjustmentIntervalMs;
  const clock = new ManualClock();
  const planners = new Planners({
    pools: [pool],
    cluster: { gpuBudget: pool.maxGpus, gpuHourPrice: o.gpuHourPrice ?? 0 },
    tpEfficiency: o.tpEfficiency,
    profile: o.profile,
    clock,
    logger: silentLogger,
    registry: new Registry(),
    actuator: new AdvisoryActuator(silentLogger),
    arima: o.arimaSearcher === undefined ? undefined : { searcher: o.arimaSearcher },
  });
  const capacity = workerCapacity(
    o.profile,
    { tp: pool.tp, tpEfficiency: o.tpEfficiency, gpuMemoryUtilization: pool.gpuMemoryUtilization, itlMs: pool.targets.tpotMs, bufferRatio: 1 },
    isl,
    osl,
  );
  const completion = { ok: true, ttftMs: pool.targets.ttftMs / 2, tpotMs: pool.targets.tpotMs / 2, inputTokens: isl, outputTokens: osl };
  planners.start();
  let carry = 0;
  let arrivals = 0;
  let predicted: number | undefined;
  let servable = layoutCapacityPerS({ prefill: 0, decode: 0, both: 1 }, capacity, isl, osl);
  let errorSum = 0;
  let errorCount = 0;
  let under = 0;
  let intervals = 0;
  let gpuMs = 0;
  try {
    for (let t = 0; t < o.durationMs; t += 1000) {
      const due = carry + Math.max(0, o.load(t));
      const n = Math.floor(due);
      carry = due - n;
      arrivals += n;
      for (let i = 0; i < n; i++) {
        planners.observeArrival(pool.name);
        planners.observeCompletion(pool.name, completion);
      }
      gpuMs += planners.state().desiredGpus * 1000;
      clock.advance(1000);
      if ((t + 1000) % intervalMs !== 0) continue;
      // The interval just ended: score it against what was decided before it, then read the next forecast.
      const actual = (arrivals * 1000) / intervalMs;
      arrivals = 0;
      intervals++;
      if (predicted !== undefined && actual > 0) {
        errorSum += Math.abs(predicted - actual) / actual;
        errorCount++;
      }
      if (actual > servable) under++;
      await planners.settled();
      const state = planners.state().pools[0]!;
      predicted = state.load?.predicted.ratePerS;
      servable = layoutCapacityPerS(state.desired, capacity, isl, osl);
    }
  } finally {
    planners.close();
  }
  return {
    pool: pool.name,
    predictor: pool.planner.loadPredictor,
    intervals,
    mape: errorCount > 0 ? errorSum / errorCount : 0,
    gpuHours: gpuMs / 3_600_000,
    underProvisionedIntervals: under,
  };
}
