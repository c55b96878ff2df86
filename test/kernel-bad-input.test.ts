// Hostile input to the kernel: a typed error with a stable code or a documented outcome, never a crash
// and never a silently wrong pair.

import { describe, expect, test } from "vitest";
import { HeadroomError } from "../src/errors.js";
import { TwinKernel } from "../src/kernel/twin.js";
import { WasmKernel } from "../src/kernel/wasm.js";
import { IMPLEMENTATIONS } from "./fixtures/kernels.js";
import { NO_TOPOLOGY, PARAMS, request, snapshot } from "./fixtures/pools.js";

const POOL = () =>
  snapshot([
    { role: "prefill", prefillMs: 100 },
    { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
  ]);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof HeadroomError ? e.code : `untyped: ${String(e)}`;
  }
  return undefined;
}

describe.each(IMPLEMENTATIONS)("%s", (_name, make) => {
  test("NaN, infinite or negative predictions are rejected with SNAPSHOT_INVALID and keep the old snapshot", () => {
    const k = make(PARAMS, NO_TOPOLOGY);
    k.loadSnapshot(POOL());
    const before = k.pick([request({ sloTtftMs: 300 })]);
    for (const bad of [NaN, Infinity, -1]) {
      for (const field of ["prefillMs", "tpotMs", "prefillQueueMs", "tpotPerTokenMs"] as const) {
        const snap = POOL();
        snap[field][0] = bad;
        expect(codeOf(() => k.loadSnapshot(snap))).toBe("SNAPSHOT_INVALID");
      }
    }
    const grid = POOL();
    grid.gridTokens = Float64Array.from([100, 50]);
    expect(codeOf(() => k.loadSnapshot(grid))).toBe("SNAPSHOT_INVALID");
    // Refused before anything was written: picks still come from the snapshot loaded before.
    expect(k.pick([request({ sloTtftMs: 300 })])).toEqual(before);
  });

  test("SLOs <= 0, non-numeric values and out-of-range fields are the invalid_request outcome", () => {
    const k = make(PARAMS, NO_TOPOLOGY);
    k.loadSnapshot(POOL());
    const bad = [
      { sloTtftMs: 0 },
      { sloTtftMs: -5 },
      { sloTpotMs: NaN },
      { sloTtftMs: "300" as unknown as number },
      { sloTtftMs: Infinity },
      { inputTokens: -1 },
      { inputTokens: 1e12 },
      { prefixHit: 1.5 },
      { outputTokens: NaN },
      { priority: NaN },
      { seed: 1.5 },
      { seed: -1 },
    ];
    const results = k.pick(bad.map((b) => request({ sloTtftMs: 300, ...b })));
    for (const r of results) expect(r).toMatchObject({ outcome: "invalid_request", prefill: -1, decode: -1, fallbacks: [] });
    // Invalid requests add no load: a valid request after them sees the snapshot's queue.
    const [a, b] = k.pick([request({ sloTtftMs: 0 }), request({ sloTtftMs: 300 })]);
    expect(a.outcome).toBe("invalid_request");
    expect(b).toMatchObject({ outcome: "positive_headroom", prefillTtftMs: 100 });
  });

  test("a pool without candidates answers no_candidates", () => {
    const k = make(PARAMS, NO_TOPOLOGY);
    for (const pods of [[], [{ role: "prefill" as const }], [{ role: "decode" as const, eligible: false }, { role: "prefill" as const }]]) {
      k.loadSnapshot(snapshot(pods));
      expect(k.pick([request({ sloTtftMs: 300 })])[0]).toMatchObject({ outcome: "no_candidates", pairs: 0, decode: -1 });
    }
  });

  test("a snapshot of another version than expected is SNAPSHOT_VERSION_MISMATCH", () => {
    const k = make(PARAMS, NO_TOPOLOGY);
    k.loadSnapshot(snapshot([{ role: "both" }], [1], 7));
    expect(codeOf(() => k.pick([request()], 8))).toBe("SNAPSHOT_VERSION_MISMATCH");
    expect(k.pick([request()], 7)[0].version).toBe(7);
  });

  test("out-of-range parameters are rejected, never clamped", () => {
    for (const over of [{ sloBufferFactor: 0 }, { sloBufferFactor: 1.1 }, { negativeHeadroomProb: 2 }, { ttftWeight: -1 }, { fallbacks: 9 }]) {
      expect(codeOf(() => make({ ...PARAMS, ...over }, NO_TOPOLOGY))).toBe("REQUEST_INVALID");
    }
  });
});

test("a batch larger than the capacity is BATCH_TOO_LARGE and nothing is picked", () => {
  const k = new WasmKernel(PARAMS, NO_TOPOLOGY, { batchCapacity: 4 });
  k.loadSnapshot(POOL());
  expect(codeOf(() => k.pick(Array.from({ length: 5 }, () => request())))).toBe("BATCH_TOO_LARGE");
  expect(k.pick(Array.from({ length: 4 }, () => request()))).toHaveLength(4);
});

test("a pool larger than the layout grows memory, and the views follow", () => {
  const k = new WasmKernel({ ...PARAMS, headroomStrategy: "best" }, NO_TOPOLOGY, { maxPods: 2 });
  k.loadSnapshot(POOL());
  expect(k.pick([request({ sloTtftMs: 300 })])[0].prefill).toBe(0);
  const pods = Array.from({ length: 3000 }, (_, i) => ({ role: i % 2 ? ("decode" as const) : ("prefill" as const), prefillMs: 100 - (i % 7), decodeWaitMs: i % 5 }));
  const big = snapshot(pods, [1], 2);
  k.loadSnapshot(big);
  const twin = new TwinKernel({ ...PARAMS, headroomStrategy: "best" }, NO_TOPOLOGY);
  twin.loadSnapshot(big);
  expect(k.pick([request({ sloTtftMs: 300 })])).toEqual(twin.pick([request({ sloTtftMs: 300 })]));
});
