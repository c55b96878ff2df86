// bench:kernel — one complete pick by the WebAssembly kernel vs its TypeScript twin, on pools of
// 8×8 to 1024×1024 with topology (two racks, two nodes per rack), per-pod speeds and queues, and
// prefill times that differ per request. JSON lines on stdout, progress on stderr. --quick for CI.

import Benchmark from "benchmark";
import { DEFAULTS } from "../src/config/schema.js";
import { TwinKernel } from "../src/kernel/twin.js";
import type { OptimizerParams, PickRequest, PoolSnapshot, TopologyParams } from "../src/kernel/types.js";
import { WasmKernel } from "../src/kernel/wasm.js";
import { benchArgs } from "./args.js";

const quick = benchArgs("bench:kernel", { quick: { type: "boolean" } }).values.quick === true;
const MAX_TIME_S = quick ? 0.25 : 2;
const SIZES = [8, 64, 256, 1024];
const GRID = [16, 128, 1024, 4096, 16384];

const PARAMS: OptimizerParams = { ...DEFAULTS.optimizer };
/** Llama-3-8B bf16 KV: 128 KiB per token, over the default bandwidths. */
const TOPOLOGY: TopologyParams = { kvBytesPerToken: 131072, bandwidthGBps: { ...DEFAULTS.topology.bandwidthGBps } };

/** A deterministic generator, so every run measures the same pools. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

/** n prefill and n decode pods; prefill ≈ 7 ms + 0.025 ms/token (the shipped H100 profile's shape) × a per-pod speed. */
function pool(n: number): PoolSnapshot {
  const rnd = lcg(n);
  const pods = 2 * n;
  const g = GRID.length;
  const snap: PoolSnapshot = {
    version: 1,
    pods,
    gridTokens: Float64Array.from(GRID),
    roles: new Uint8Array(pods),
    nodeIds: new Int32Array(pods),
    rackIds: new Int32Array(pods),
    prefillMs: new Float64Array(g * pods),
    prefillLoadMs: new Float64Array(g * pods),
    localPrefillMs: new Float64Array(g * pods),
    decodeWaitMs: new Float64Array(g * pods),
    tpotMs: new Float64Array(g * pods),
    prefillQueueMs: new Float64Array(pods),
    decodeQueueMs: new Float64Array(pods),
    tpotLoadMs: new Float64Array(pods),
    waitPerRequestMs: new Float64Array(pods).fill(2),
    tpotPerRequestMs: new Float64Array(pods).fill(0.05),
    tpotPerTokenMs: new Float64Array(pods).fill(2e-6),
  };
  for (let i = 0; i < pods; i++) {
    snap.roles[i] = (i < n ? 1 : 2) | 4;
    snap.rackIds[i] = i % 2;
    snap.nodeIds[i] = (i >> 1) % 2;
    const speed = 0.8 + 0.45 * rnd();
    const wait = 30 * rnd();
    const step = 8 + 8 * rnd();
    GRID.forEach((tokens, j) => {
      snap.prefillMs[j * pods + i] = speed * (7 + 0.025 * tokens);
      snap.prefillLoadMs[j * pods + i] = snap.prefillMs[j * pods + i];
      snap.localPrefillMs[j * pods + i] = 1.3 * speed * (7 + 0.025 * tokens);
      snap.decodeWaitMs[j * pods + i] = wait + 0.002 * tokens;
      snap.tpotMs[j * pods + i] = step + 0.0004 * tokens;
    });
    snap.prefillQueueMs[i] = 150 * rnd();
  }
  return snap;
}

function requests(count: number, sloTtftMs: number, sloTpotMs: number): PickRequest[] {
  const rnd = lcg(99);
  return Array.from({ length: count }, (_, i) => ({
    inputTokens: Math.round(256 * 16 ** rnd()),
    outputTokens: 256,
    prefixHit: 0,
    sloTtftMs,
    sloTpotMs,
    priority: 0,
    seed: i + 1,
  }));
}

/** The TTFT SLO at which about `share` of the pairs are positive, found by bisection. */
function calibrate(kernel: WasmKernel, share: number, sloTpotMs: number): number {
  let lo = 1;
  let hi = 10_000;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    const reqs = requests(64, mid, sloTpotMs);
    const positive = kernel.pick(reqs).reduce((s, r) => s + r.positivePairs / r.pairs, 0) / reqs.length;
    if (positive < share) lo = mid;
    else hi = mid;
  }
  return hi;
}

function medianSeconds(fn: () => void): number {
  const bench = new Benchmark(fn, { maxTime: MAX_TIME_S, minSamples: 5, initCount: 1 });
  bench.run({ async: false });
  const sample = [...bench.stats.sample].sort((a, b) => a - b);
  return sample[Math.floor(sample.length / 2)];
}

for (const n of SIZES) {
  const snap = pool(n);
  const kernel = new WasmKernel(PARAMS, TOPOLOGY, { maxPods: 2 * n, batchCapacity: 64 });
  kernel.loadSnapshot(snap);
  const twin = new TwinKernel(PARAMS, TOPOLOGY);
  twin.loadSnapshot(snap);
  for (const regime of ["easy", "tight"] as const) {
    const sloTpotMs = 40;
    const sloTtftMs = regime === "easy" ? calibrate(kernel, 0.9, sloTpotMs) : calibrate(kernel, 0.03, sloTpotMs);
    const reqs = requests(64, sloTtftMs, sloTpotMs);
    const positiveShare = kernel.pick(reqs).reduce((s, r) => s + r.positivePairs / r.pairs, 0) / reqs.length;
    process.stderr.write(`kernel ${n}x${n} ${regime}: SLO ${sloTtftMs.toFixed(0)}/${sloTpotMs} ms, ${(100 * positiveShare).toFixed(1)} % positive\n`);
    let i = 0;
    const one = [reqs[0]];
    const pickUs = 1e6 * medianSeconds(() => {
      one[0] = reqs[i++ & 63];
      kernel.pick(one);
    });
    let j = 0;
    const twinPickUs = 1e6 * medianSeconds(() => {
      one[0] = reqs[j++ & 63];
      twin.pick(one);
    });
    const batchS = medianSeconds(() => kernel.pick(reqs));
    const line = {
      bench: "kernel",
      n,
      m: n,
      regime,
      pickUs: round(pickUs),
      twinPickUs: round(twinPickUs),
      ratio: round(twinPickUs / pickUs),
      batch64PicksPerS: Math.round(64 / batchS),
      positiveShare: round(positiveShare),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
