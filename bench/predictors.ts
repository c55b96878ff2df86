// bench:predictors — main-thread time to refresh one pool's snapshot of 1,024 pods: with the `profile`
// predictor, and with the `remote` predictor against a loopback stand-in of the latency-predictor
// service. JSON lines on stdout, progress on stderr. --quick for CI.

import { ManualClock } from "../src/clock.js";
import { PoolState } from "../src/engine/pool-state.js";
import { silentLogger } from "../src/log.js";
import { InflightLoad } from "../src/pods/inflight.js";
import { PodRegistry } from "../src/pods/registry.js";
import type { PodSpec } from "../src/pods/types.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { ProfilePredictor } from "../src/predictors/profile.js";
import { logGrid, type Predictor, type Quantity } from "../src/predictors/types.js";
import { emit, medianSeconds, note, round } from "./measure.js";

const quick = process.argv.includes("--quick");
const MAX_TIME_S = quick ? 0.5 : 3;
const PODS = 1024;

const profile = LatencyProfile.shipped("h100_llama3_8b_bf16");
const profiles = new Map([[profile.name, profile]]);

/** 1,024 scraped pods, half prefill and half decode, with varied live state and some in-flight picks. */
function cluster(predictors: Record<Quantity, Predictor>, gridTokens: Float64Array) {
  const clock = new ManualClock(1_000_000);
  const registry = new PodRegistry({ clock, staleAfterMs: 1000 });
  const inflight = new InflightLoad({ clock, reflectDelayMs: 200, ttlFactor: 2 });
  const specs: PodSpec[] = Array.from({ length: PODS }, (_, i) => ({
    address: `10.${i >> 8}.${i & 255}.1:8000`,
    pool: "medium",
    role: i % 2 === 0 ? "prefill" : "decode",
    rack: `r${i % 4}`,
    node: `n${i % 64}`,
    metricsUrl: `http://10.${i >> 8}.${i & 255}.1:8000/metrics`,
  }));
  registry.replacePool("static", "medium", specs);
  specs.forEach((spec, i) => {
    registry.recordScrape(spec.address, {
      ok: true,
      metrics: { scrapedAtMs: clock.nowMs(), waiting: i % 7, running: (i * 13) % 200, kvUsage: ((i * 37) % 100) / 100 },
    });
  });
  for (let k = 0; k < 2000; k++) {
    inflight.add({
      requestId: `r${k}`,
      pool: "medium",
      prefill: specs[(2 * k) % PODS].address,
      decode: specs[(2 * k + 1) % PODS].address,
      prefillTokens: 1000 + k,
      prefillComputeMs: 25,
      kvTokens: 1200,
      prefillDoneMs: clock.nowMs() + 50,
      decodeDoneMs: clock.nowMs() + 3000,
    });
  }
  const pool = new PoolState(
    {
      name: "medium",
      tp: 1,
      gpuMemoryUtilization: 0.9,
      expected: { isl: 2000, osl: 150 },
      gridTokens,
      defaultProfile: profile.name,
      profiles,
      predictors,
      clock,
      logger: silentLogger,
    },
    registry,
    inflight,
  );
  return pool;
}

const profilePredictor = new ProfilePredictor({ profiles, tpEfficiency: 0.85 });
{
  const all = { "prefill-ttft": profilePredictor, "decode-ttft": profilePredictor, "decode-tpot": profilePredictor };
  const grid = logGrid(12, 16, 32768);
  const pool = cluster(all, grid);
  const refreshMs = 1e3 * medianSeconds(() => pool.refresh(), MAX_TIME_S);
  note(`profile: ${PODS} pods, ${grid.length} grid points: refresh ${refreshMs.toFixed(2)} ms`);
  emit({ bench: "predictor-cache", predictor: "profile", pods: PODS, gridPoints: grid.length, refreshMs: round(refreshMs, 3) });
}
