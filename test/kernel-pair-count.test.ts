// Pair counts past 2^31: a pool at the snapshot's pod limit holds up to 2^32 pairs, and the kernel
// counts them, classifies and draws as the twin does.

import { expect, test } from "vitest";
import { TwinKernel } from "../src/kernel/twin.js";
import { WasmKernel } from "../src/kernel/wasm.js";
import { NO_TOPOLOGY, PARAMS, request, snapshot } from "./fixtures/pools.js";

test("a pool of 46,341 both pods has more than 2^31 pairs, counted and drawn as the twin does", () => {
  const n = 46341;
  const pods = Array.from({ length: n }, (_, i) => ({ role: "both" as const, prefillMs: 10 + (i % 13), decodeWaitMs: i % 7, tpotMs: 20, localPrefillMs: 30 }));
  const snap = snapshot(pods, [1], 1);
  const params = { ...PARAMS, localPrefill: "compete" as const, negativeHeadroomProb: 0.5 };
  const twin = new TwinKernel(params, NO_TOPOLOGY);
  twin.loadSnapshot(snap);
  const kernel = new WasmKernel(params, NO_TOPOLOGY);
  kernel.loadSnapshot(snap);
  // Every pair positive, then some positive and some not (an explore draw at this seed).
  const batch = [request({ sloTtftMs: 60, seed: 3 }), request({ sloTtftMs: 30, seed: 4 })];
  const results = kernel.pick(batch);
  expect(results).toEqual(twin.pick(batch));
  expect(results[0]).toMatchObject({ outcome: "positive_headroom", pairs: n * n, positivePairs: n * n });
  expect(results[1].outcome).toBe("explore");
});
