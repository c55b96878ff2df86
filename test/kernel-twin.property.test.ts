// The WebAssembly kernel and its TypeScript twin agree exactly — every number, bit for bit — for the
// same seed, on random pools, parameters and batches with in-batch accounting.

import fc from "fast-check";
import { expect, test } from "vitest";
import { TwinKernel } from "../src/kernel/twin.js";
import type { PickResult } from "../src/kernel/types.js";
import { WasmKernel } from "../src/kernel/wasm.js";
import { arbParams, arbRequest, arbSnapshot, NO_TOPOLOGY, PARAMS, request, TOPOLOGY } from "./fixtures/pools.js";

/** Numbers as their exact bit patterns, so -0, 0 and NaN payloads are all told apart. */
function bits(results: PickResult[]): string {
  const view = new DataView(new ArrayBuffer(8));
  return JSON.stringify(results, (_key, value) => {
    if (typeof value !== "number") return value;
    view.setFloat64(0, value);
    return view.getBigUint64(0).toString(16);
  });
}

/**
 * Runs the property; returns how many picks there were and how many took the kernel's way for groups
 * the SLO line does not cut (uncutGroups), so that a test can check both ways were compared.
 */
function agree(maxPods: number, numRuns: number, maxBatch: number): { picks: number; uncut: number } {
  let picks = 0;
  let uncut = 0;
  fc.assert(
    fc.property(arbSnapshot(maxPods), fc.array(arbRequest, { minLength: 1, maxLength: maxBatch }), arbParams, (snap, batch, { params, topology }) => {
      const twin = new TwinKernel(params, topology);
      twin.loadSnapshot(snap);
      const kernel = new WasmKernel(params, topology, { maxPods: 64, batchCapacity: 64 });
      kernel.loadSnapshot(snap);
      expect(bits(kernel.pick(batch, snap.version))).toBe(bits(twin.pick(batch, snap.version)));
      picks += batch.length;
      uncut += kernel.uncutPicks;
    }),
    { numRuns, seed: 20261122 },
  );
  return { picks, uncut };
}

test("kernel = twin on small pools, with and without groups the SLO line cuts", () => {
  const { picks, uncut } = agree(12, 1500, 8);
  expect(uncut).toBeGreaterThan(picks / 10);
  expect(uncut).toBeLessThan(picks * 0.9);
});

test("kernel = twin on pools of up to 300 pods per role", () => {
  const { picks, uncut } = agree(600, 60, 16);
  expect(uncut).toBeGreaterThan(0);
  expect(uncut).toBeLessThan(picks);
});

test("identical pods at scale: ties resolve to the lowest pair in both", () => {
  const n = 600;
  const grid = Float64Array.from([16, 8192]);
  const filled = (size: number, v: number) => new Float64Array(size).fill(v);
  const snap = {
    version: 3,
    pods: n,
    gridTokens: grid,
    roles: Uint8Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : 2) | 4),
    nodeIds: Int32Array.from({ length: n }, (_, i) => (i >> 1) % 4),
    rackIds: Int32Array.from({ length: n }, (_, i) => (i >> 3) % 2),
    prefillMs: filled(2 * n, 50),
    prefillLoadMs: filled(2 * n, 50),
    localPrefillMs: filled(2 * n, 60),
    decodeWaitMs: filled(2 * n, 5),
    tpotMs: filled(2 * n, 20),
    prefillQueueMs: filled(n, 0),
    decodeQueueMs: filled(n, 0),
    tpotLoadMs: filled(n, 0),
    waitPerRequestMs: filled(n, 0),
    tpotPerRequestMs: filled(n, 0),
    tpotPerTokenMs: filled(n, 0),
  };
  const params = { ...PARAMS, headroomStrategy: "best" as const, localPrefill: "never" as const };
  for (const topology of [NO_TOPOLOGY, TOPOLOGY]) {
    const twin = new TwinKernel(params, topology);
    twin.loadSnapshot(snap);
    const kernel = new WasmKernel(params, topology);
    kernel.loadSnapshot(snap);
    const batch = [request({ sloTtftMs: 500, sloTpotMs: 50 }), request(), request({ sloTtftMs: 500 })];
    const results = kernel.pick(batch);
    expect(bits(results)).toBe(bits(twin.pick(batch)));
    // Pod 0 is the lowest prefill pod and pod 1 the lowest decode pod; on the same node in topology
    // mode, whose transfer is the cheapest anyway. The second request sees pod 0's added queue.
    expect(results[0]).toMatchObject({ prefill: 0, decode: 1 });
    expect(results[1].prefill).not.toBe(0);
  }
});

/** A pool of n prefill and n decode pods over two racks of two nodes, speeds and queues per pod. */
function largePool(n: number, skewed: boolean) {
  let s = n >>> 0;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const grid = [16, 128, 1024, 4096, 16384];
  const pods = 2 * n;
  const g = grid.length;
  const curve = () => new Float64Array(g * pods);
  const snap = {
    version: 9,
    pods,
    gridTokens: Float64Array.from(grid),
    roles: Uint8Array.from({ length: pods }, (_, i) => (i < n ? 1 : i < n + 8 ? 3 : 2) | 4),
    nodeIds: Int32Array.from({ length: pods }, (_, i) => (i >> 1) % 2),
    rackIds: Int32Array.from({ length: pods }, (_, i) => i % 2),
    prefillMs: curve(),
    prefillLoadMs: curve(),
    localPrefillMs: curve(),
    decodeWaitMs: curve(),
    tpotMs: curve(),
    prefillQueueMs: new Float64Array(pods),
    decodeQueueMs: new Float64Array(pods),
    tpotLoadMs: new Float64Array(pods),
    waitPerRequestMs: new Float64Array(pods).fill(2),
    tpotPerRequestMs: new Float64Array(pods).fill(0.05),
    tpotPerTokenMs: new Float64Array(pods).fill(2e-6),
  };
  for (let i = 0; i < pods; i++) {
    // Skewed: most pods equal, a few far apart, so that the kernel's bucket sort falls back.
    const speed = skewed ? (i % 97 === 0 ? 1e-6 : i % 89 === 0 ? 1e6 : 1) : 0.8 + 0.45 * rnd();
    const wait = skewed ? (i % 3) * 10 : 30 * rnd();
    const step = 8 + 8 * rnd();
    grid.forEach((tokens, j) => {
      snap.prefillMs[j * pods + i] = speed * (7 + 0.025 * tokens);
      // Every third pod as a remote predictor leaves it: the curve a TTFT, the load its compute.
      snap.prefillLoadMs[j * pods + i] = (i % 3 === 0 ? 0.4 : 1) * speed * (7 + 0.025 * tokens);
      snap.localPrefillMs[j * pods + i] = 1.3 * speed * (7 + 0.025 * tokens);
      snap.decodeWaitMs[j * pods + i] = wait + 0.002 * tokens;
      snap.tpotMs[j * pods + i] = step + 0.0004 * tokens;
    });
    snap.prefillQueueMs[i] = skewed ? 0 : 150 * rnd();
  }
  return snap;
}

test.each([
  [1024, false],
  [1024, true],
  [300, true],
])("kernel = twin at bench scale: %i pods per role, skewed values %s, every strategy", (n, skewed) => {
  const snap = largePool(n, skewed);
  const batch = Array.from({ length: 24 }, (_, i) =>
    request({
      inputTokens: 100 + ((i * 977) % 4000),
      outputTokens: 256,
      seed: i * 7919 + 1,
      sloTtftMs: i % 6 === 5 ? undefined : [80, 150, 260, 600][i % 4],
      sloTpotMs: i % 5 === 4 ? undefined : 40,
      priority: i % 7 === 6 ? -1 : 0,
    }),
  );
  for (const headroomStrategy of ["most", "least", "best"] as const) {
    for (const topology of [TOPOLOGY, NO_TOPOLOGY]) {
      const params = { ...PARAMS, headroomStrategy, localPrefill: "threshold" as const, pdThreshold: 1024, negativeHeadroomProb: 0.1 };
      const twin = new TwinKernel(params, topology);
      twin.loadSnapshot(snap);
      const kernel = new WasmKernel(params, topology, { batchCapacity: 64 });
      kernel.loadSnapshot(snap);
      expect(bits(kernel.pick(batch))).toBe(bits(twin.pick(batch)));
    }
  }
});
