// bench:planner — each default pool's planner, in virtual time, on a sinusoidal load (2–30 req/s,
// period 150 s, as in the public planner benchmark) and a step load (5 → 25 req/s at 5 min), once per
// load predictor: how well it forecast the rate (MAPE), what it spent (GPU-hours) and how often the
// layout it had decided could not serve the load that came. Then bench/search-thread-lag.ts on one
// core: what the ARIMA search thread's fits cost the main thread. JSON lines on stdout. --quick: 10
// minutes of load instead of 20, and shorter lag rounds.

import { spawnSync } from "node:child_process";
import { BUILTIN_PROFILE, DEFAULTS } from "../src/config/schema.js";
import { ArimaSearchThread } from "../src/planner/arima-search.js";
import { replay, sineLoad, stepLoad } from "../src/planner/replay.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { emit, note, round } from "./measure.js";
import { benchArgs } from "./args.js";

const quick = benchArgs("bench:planner", { quick: { type: "boolean" } }).values.quick === true;
const DURATION_MS = (quick ? 10 : 20) * 60_000;
const profile = LatencyProfile.shipped(BUILTIN_PROFILE);
const loads = { sine: sineLoad(2, 30, 150_000), step: stepLoad(5, 25, 300_000) };
const thread = new ArimaSearchThread();

try {
  for (const base of DEFAULTS.pools) {
    for (const [load, curve] of Object.entries(loads)) {
      for (const predictor of ["constant", "kalman", "arima"] as const) {
        const pool = { ...base, planner: { ...base.planner, loadPredictor: predictor, burstProtection: false } };
        const r = await replay({
          pool,
          profile,
          tpEfficiency: DEFAULTS.predictors.tpEfficiency,
          load: curve,
          durationMs: DURATION_MS,
          gpuHourPrice: DEFAULTS.cluster.gpuHourPrice,
          arimaSearcher: thread.search,
        });
        note(`${pool.name} ${load} ${predictor}: MAPE ${(100 * r.mape).toFixed(1)} %, ${r.gpuHours.toFixed(2)} GPU-hours, ${r.underProvisionedIntervals}/${r.intervals} under-provisioned`);
        emit({ bench: "planner", pool: pool.name, load, predictor, mape: round(r.mape, 3), gpuHours: round(r.gpuHours, 3), underProvisionedIntervals: r.underProvisionedIntervals, intervals: r.intervals });
      }
    }
  }
} finally {
  thread.close();
}

// Pinned to one core, as a server given one core runs; unpinned where taskset is missing.
const lagRun = [process.execPath, new URL("./search-thread-lag.js", import.meta.url).pathname, ...(quick ? ["--quick"] : [])];
const pinned = spawnSync("taskset", ["--version"]).error === undefined;
if (!pinned) note("taskset not found: the search-thread lag runs unpinned");
const [command, ...args] = pinned ? ["taskset", "-c", "0", ...lagRun] : lagRun;
const lag = spawnSync(command, args, { stdio: ["ignore", "inherit", "inherit"] });
if (lag.status !== 0) throw new Error("bench/search-thread-lag.js failed");
