// bench:predictors — main-thread time to refresh one pool's snapshot of 1,024 pods: with the `profile`
// predictor, and with the `remote` predictor against a loopback stand-in of the latency-predictor
// service. JSON lines on stdout, progress on stderr. --quick for CI.

import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { Registry } from "prom-client";
import { ManualClock, realClock } from "../src/clock.js";
import { PoolState } from "../src/engine/pool-state.js";
import { silentLogger } from "../src/log.js";
import { InflightLoad } from "../src/pods/inflight.js";
import { PodRegistry } from "../src/pods/registry.js";
import type { PodSpec } from "../src/pods/types.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { ProfilePredictor } from "../src/predictors/profile.js";
import { ThreadedRemotePredictor } from "../src/predictors/remote-threaded.js";
import { logGrid, type PodFeatures, type Predictor, type Quantity } from "../src/predictors/types.js";
import { emit, median, medianSeconds, note, round } from "./measure.js";
import { benchArgs } from "./args.js";

const quick = benchArgs("bench:predictors", { quick: { type: "boolean" } }).values.quick === true;
const MAX_TIME_S = quick ? 0.5 : 3;
const PODS = 1024;

const profile = LatencyProfile.shipped("h100_llama3_8b_bf16");
const profiles = new Map([[profile.name, profile]]);

/** 1,024 scraped pods, half prefill and half decode, with varied live state and some in-flight picks. */
function cluster(predictors: Record<Quantity, Predictor>, gridTokens: Float64Array) {
  const clock = new ManualClock(1_000_000);
  const registry = new PodRegistry({ clock, staleAfterMs: 1000 });
  const inflight = new InflightLoad<PodFeatures>({ clock, reflectDelayMs: 200, ttlFactor: 2 });
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
  const features = pool.features(specs.map((spec) => registry.get(spec.address)!));
  for (let k = 0; k < 2000; k++) {
    const [p, d] = [(2 * k) % PODS, (2 * k + 1) % PODS];
    inflight.add({
      requestId: `r${k}`,
      pool: "medium",
      prefill: specs[p].address,
      decode: specs[d].address,
      inputTokens: 1200,
      outputTokens: 150,
      prefillTokens: 1000 + k,
      prefillComputeMs: 25,
      kvTokens: 1275,
      prefillDoneMs: clock.nowMs() + 50,
      decodeDoneMs: clock.nowMs() + 3000,
      predicted: { prefillTtftMs: 50, decodeTtftMs: 5, transferMs: 6, ttftMs: 61, tpotMs: 19.6 },
      prefillFeatures: features[p],
      decodeFeatures: features[d],
    });
  }
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

{
  const worker = new Worker(new URL("./stand-in.worker.js", import.meta.url));
  const [{ url }] = (await once(worker, "message")) as [{ url: string }];
  const endpoints = { trainingUrl: url, predictionUrls: [url] };
  const remote = new ThreadedRemotePredictor({
    endpoints: { "prefill-ttft": endpoints, "decode-ttft": endpoints, "decode-tpot": endpoints },
    fallback: profilePredictor,
    // A refresh of thousands of rows may take a second here; values stay fresh for 3 refresh periods.
    options: { timeoutMs: 2000, refreshMs: 1000, trainingBufferSize: 10_000, trainingFlushMs: 1000 },
    clock: realClock,
    registry: new Registry(),
    logger: silentLogger,
  });
  const gridPoints = 4;
  const grid = logGrid(gridPoints, 64, 32768);
  const pool = cluster({ "prefill-ttft": remote, "decode-ttft": remote, "decode-tpot": remote }, grid);
  // Main-thread time of a refresh: filling the snapshot, handing the pods' features to the remote
  // predictor's thread and taking its curves back. The stand-in answers from a thread of its own.
  const rounds = quick ? 5 : 30;
  const times: number[] = [];
  const totals = async () => {
    worker.postMessage("totals");
    const [t] = (await once(worker, "message")) as [{ predictCalls: number; predictRows: number }];
    return t;
  };
  let calls = 0;
  let rows = 0;
  for (let r = 0; r < rounds + 1; r++) {
    const before = await totals();
    const elu = performance.eventLoopUtilization();
    pool.refresh();
    await pool.lastFetch;
    const busyMs = performance.eventLoopUtilization(elu).active;
    const after = await totals();
    if (r === 0) continue; // warm-up
    times.push(busyMs);
    calls = after.predictCalls - before.predictCalls;
    rows = after.predictRows - before.predictRows;
  }
  const fresh = remote.freshPods("decode-tpot", grid);
  remote.close();
  worker.postMessage("close");
  const refreshMs = median(times);
  note(`remote: ${PODS} pods x ${gridPoints} grid points: ${rows} rows in ${calls} calls per refresh, main thread ${refreshMs.toFixed(2)} ms, ${fresh} decode pods fresh`);
  emit({ bench: "predictor-cache", predictor: "remote", pods: PODS, gridPoints, refreshMs: round(refreshMs, 3), calls, rows });
}
