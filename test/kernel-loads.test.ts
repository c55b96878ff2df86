// Between publications only the in-flight loads change: `updateLoads` replaces them in the loaded
// snapshot, with the same picks as loading the whole snapshot again, and refuses a bad update
// without changing what the kernel holds.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SnapshotError, SnapshotVersionError } from "../src/errors.js";
import { IMPLEMENTATIONS } from "./fixtures/kernels.js";
import { arbRequest, arbSnapshot, PARAMS, TOPOLOGY } from "./fixtures/pools.js";

describe.each(IMPLEMENTATIONS)("%s updateLoads", (_name, make) => {
  it("picks as a full reload of the snapshot with the same loads does", () => {
    fc.assert(
      fc.property(arbSnapshot(12), fc.array(arbRequest, { minLength: 1, maxLength: 8 }), fc.double({ min: 0, max: 500, noNaN: true }), (snap, reqs, extra) => {
        const moved = {
          ...snap,
          prefillQueueMs: snap.prefillQueueMs.map((v, i) => v + (i % 2) * extra),
          decodeQueueMs: snap.decodeQueueMs.map((v, i) => v + (i % 3) * extra),
          tpotLoadMs: snap.tpotLoadMs.map((v) => v + extra / 100),
        };
        const updated = make(PARAMS, TOPOLOGY);
        updated.loadSnapshot(snap);
        updated.updateLoads(moved);
        const reloaded = make(PARAMS, TOPOLOGY);
        reloaded.loadSnapshot(moved);
        expect(updated.pick(reqs)).toEqual(reloaded.pick(reqs));
      }),
      { seed: 7, numRuns: 60 },
    );
  });

  it("refuses loads for another version or a NaN load, and keeps picking on what it held", () => {
    fc.assert(
      fc.property(arbSnapshot(12), arbRequest, (snap, req) => {
        const k = make(PARAMS, TOPOLOGY);
        k.loadSnapshot(snap);
        const before = k.pick([req]);
        expect(() => k.updateLoads({ ...snap, version: snap.version + 1 })).toThrow(SnapshotVersionError);
        if (snap.pods > 0) {
          const bad = { ...snap, decodeQueueMs: Float64Array.from(snap.decodeQueueMs, (v, i) => (i === 0 ? NaN : v)) };
          expect(() => k.updateLoads(bad)).toThrow(SnapshotError);
        }
        expect(k.pick([req])).toEqual(before);
      }),
      { seed: 8, numRuns: 40 },
    );
  });
});
