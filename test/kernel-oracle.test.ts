// The kernel against the brute-force oracle: deterministic choices and counts agree exactly, and the
// kernel's choice frequencies over many seeds fit the oracle's probabilities (chi-square, fixed seeds).

import chisquareCdf from "@stdlib/stats-base-dists-chisquare-cdf";
import fc from "fast-check";
import { expect, test } from "vitest";
import { oracle } from "../src/kernel/oracle.js";
import { WasmKernel } from "../src/kernel/wasm.js";
import { frequencies } from "./fixtures/kernels.js";
import { arbParams, arbRequest, arbSnapshot } from "./fixtures/pools.js";

test("counts, deterministic picks, shedding and empty pools match the oracle", () => {
  fc.assert(
    fc.property(arbSnapshot(10), arbRequest, arbParams, (snap, req, { params, topology }) => {
      const kernel = new WasmKernel(params, topology, { maxPods: 16 });
      kernel.loadSnapshot(snap);
      const [r] = kernel.pick([req]);
      const o = oracle(snap, params, topology, req);
      if (o.noCandidates) {
        expect(r.outcome).toBe("no_candidates");
        return;
      }
      expect(r.pairs).toBe(o.pairs.length);
      if (o.shed) {
        expect(r.outcome).toBe("shed");
        return;
      }
      const chosen = o.pairs.find((x) => x.d === r.decode && (x.local ? r.prefill === -1 : x.p === r.prefill));
      expect(chosen?.byOutcome[r.outcome]).toBeGreaterThan(0);
      expect(r.ttftMs).toBe(chosen!.ttftMs);
      if (r.outcome !== "no_slo") {
        expect(r.positivePairs).toBe(o.pairs.filter((x) => x.positive).length);
        expect(r.blended).toBe(chosen!.blended);
      }
      const deterministic = r.outcome === "no_slo" || (r.outcome === "positive_headroom" && params.headroomStrategy === "best");
      if (deterministic) expect(chosen!.byOutcome[r.outcome]).toBeCloseTo(chosen!.prob, 12);
    }),
    { numRuns: 3000, seed: 7 },
  );
});

test("choice frequencies fit the oracle's probabilities (chi-square)", () => {
  const runs = 3000;
  const pValues: number[] = [];
  fc.assert(
    fc.property(arbSnapshot(8), arbRequest, arbParams, (snap, req, { params, topology }) => {
      const o = oracle(snap, params, topology, req);
      if (o.noCandidates || o.shed) return;
      const kernel = new WasmKernel(params, topology, { maxPods: 16 });
      kernel.loadSnapshot(snap);
      const counts = frequencies(kernel, req, runs);
      let chi = 0;
      let bins = 0;
      let restExpected = 0;
      let restObserved = 0;
      for (const pair of o.pairs) {
        const observed = counts.get(`${pair.local ? -1 : pair.p},${pair.d}`) ?? 0;
        const expected = pair.prob * runs;
        if (expected === 0) {
          expect(observed, `pair ${pair.p},${pair.d} has probability 0`).toBe(0);
        } else if (expected < 5) {
          restExpected += expected;
          restObserved += observed;
        } else {
          chi += (observed - expected) ** 2 / expected;
          bins++;
        }
      }
      if (restExpected > 0) {
        chi += (restObserved - restExpected) ** 2 / restExpected;
        bins++;
      }
      if (bins < 2) return;
      const p = 1 - chisquareCdf(chi, bins - 1);
      pValues.push(p);
      expect(p, `chi-square ${chi.toFixed(1)} on ${bins - 1} degrees of freedom`).toBeGreaterThan(1e-4);
    }),
    { numRuns: 60, seed: 42 },
  );
  // The test must have exercised real draws, not only deterministic cases.
  expect(pValues.length).toBeGreaterThan(15);
});
