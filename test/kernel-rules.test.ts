// Each rule of SPEC.md §2 on a small hand-made pool, with the expected numbers worked out here, for
// the WebAssembly kernel and its TypeScript twin alike.

import { describe, expect, test } from "vitest";
import { oracle } from "../src/kernel/oracle.js";
import { frequencies, IMPLEMENTATIONS, pickOnce } from "./fixtures/kernels.js";
import { NO_TOPOLOGY, PARAMS, request, snapshot, TOPOLOGY } from "./fixtures/pools.js";

// Two prefill pods (100 and 200 ms) and two decode pods (wait 10 / TPOT 20, wait 50 / TPOT 40).
// With SLO 300 / 50 ms and buffer 0.9 the budgets are 270 / 45 ms; transfer is the 5 ms overhead:
//   (0,2) ttft 115, hT 155, hP 25, blended 0.8*155 + 0.2*25 = 129
//   (0,3) ttft 155, hT 115, hP  5, blended 93
//   (1,2) ttft 215, hT  55, hP 25, blended 49
//   (1,3) ttft 255, hT  15, hP  5, blended 13
const POOL = snapshot([
  { role: "prefill", prefillMs: 100 },
  { role: "prefill", prefillMs: 200 },
  { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
  { role: "decode", decodeWaitMs: 50, tpotMs: 40 },
]);
const SLO = { sloTtftMs: 300, sloTpotMs: 50 };
const RUNS = 4000;

function share(counts: Map<string, number>, key: string): number {
  return (counts.get(key) ?? 0) / RUNS;
}

/** Five binomial standard deviations, so a fixed-seed run fails only on a real difference. */
function tolerance(p: number): number {
  return 5 * Math.sqrt((p * (1 - p)) / RUNS) + 1e-9;
}

describe.each(IMPLEMENTATIONS)("%s", (_name, make) => {
  test("best takes the pair of largest blended headroom, with its numbers", () => {
    const r = pickOnce(make, POOL, request(SLO), { headroomStrategy: "best" });
    expect(r).toMatchObject({ outcome: "positive_headroom", prefill: 0, decode: 2, decodeOnly: false, fallbacks: [3] });
    expect(r).toMatchObject({ prefillTtftMs: 100, decodeTtftMs: 10, transferMs: 5, ttftMs: 115, tpotMs: 20 });
    expect(r.headroomTtftMs).toBeCloseTo(155, 9);
    expect(r.headroomTpotMs).toBeCloseTo(25, 9);
    expect(r.blended).toBeCloseTo(129, 9);
    expect(r).toMatchObject({ pairs: 4, positivePairs: 4 });
  });

  test("most favours large headroom: weights blended - min + 1 = 117, 81, 37, 1", () => {
    const k = make({ ...PARAMS, headroomStrategy: "most" }, NO_TOPOLOGY);
    k.loadSnapshot(POOL);
    const counts = frequencies(k, request(SLO), RUNS);
    const expected: Record<string, number> = { "0,2": 117 / 236, "0,3": 81 / 236, "1,2": 37 / 236, "1,3": 1 / 236 };
    for (const [key, p] of Object.entries(expected)) expect(Math.abs(share(counts, key) - p)).toBeLessThan(tolerance(p));
  });

  test("least favours the pair just inside its SLO: weights max - blended + 1 = 1, 37, 81, 117", () => {
    const k = make({ ...PARAMS, headroomStrategy: "least" }, NO_TOPOLOGY);
    k.loadSnapshot(POOL);
    const counts = frequencies(k, request(SLO), RUNS);
    const expected: Record<string, number> = { "0,2": 1 / 236, "0,3": 37 / 236, "1,2": 81 / 236, "1,3": 117 / 236 };
    for (const [key, p] of Object.entries(expected)) expect(Math.abs(share(counts, key) - p)).toBeLessThan(tolerance(p));
  });

  test("a TTFT-only SLO leaves TPOT unconstrained: no TPOT headroom, blended = 0.8 * hT", () => {
    const slow = snapshot([
      { role: "prefill", prefillMs: 100 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 900 },
    ]);
    const r = pickOnce(make, slow, request({ sloTtftMs: 300 }), { headroomStrategy: "best" });
    expect(r.outcome).toBe("positive_headroom");
    expect(r.headroomTpotMs).toBeNaN();
    expect(r.blended).toBeCloseTo(0.8 * (270 - 115), 9);
    // Budget 135 ms: only (0,2) at 115 ms is positive.
    expect(pickOnce(make, POOL, request({ sloTtftMs: 150 })).positivePairs).toBe(1);
  });

  test("a TPOT-only SLO classifies by the decode pod alone", () => {
    const slowPrefill = snapshot([
      { role: "prefill", prefillMs: 10_000 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 40 },
    ]);
    // Budget 27 ms: decode 1 (20 ms) meets it whatever the 10 s prefill; decode 2 (40 ms) does not.
    const r = pickOnce(make, slowPrefill, request({ sloTpotMs: 30 }), { negativeHeadroomProb: 0 });
    expect(r).toMatchObject({ outcome: "positive_headroom", decode: 1, positivePairs: 1 });
    expect(r.headroomTtftMs).toBeNaN();
    expect(r.blended).toBeCloseTo(0.2 * 7, 9);
  });

  test("no SLO: the lowest ttft + tpot * OSL, no headroom", () => {
    // OSL 128: (0,2) 115 + 2560 = 2675 beats (1,2) 2775 and (0,3) 5275.
    const r = pickOnce(make, POOL, request({ outputTokens: 128 }));
    expect(r).toMatchObject({ outcome: "no_slo", prefill: 0, decode: 2, positivePairs: 0 });
    expect(r.blended).toBeNaN();
    expect(r.headroomTtftMs).toBeNaN();
    // A long answer makes TPOT dominate: wait 10 / TPOT 20 over wait 0 / TPOT 21 only when OSL is large.
    const pool = snapshot([
      { role: "prefill", prefillMs: 100 },
      { role: "decode", decodeWaitMs: 0, tpotMs: 21 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
    ]);
    expect(pickOnce(make, pool, request({ outputTokens: 5 })).decode).toBe(1);
    expect(pickOnce(make, pool, request({ outputTokens: 50 })).decode).toBe(2);
  });

  test("no SLO ties go to the lowest (p, d)", () => {
    const twins = snapshot([
      { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
      { role: "prefill", prefillMs: 100 },
      { role: "prefill", prefillMs: 100 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
    ]);
    expect(pickOnce(make, twins, request())).toMatchObject({ prefill: 1, decode: 0 });
  });

  test("best ties go to the lowest (p, d)", () => {
    const same = snapshot([
      { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
      { role: "prefill", prefillMs: 100 },
      { role: "prefill", prefillMs: 100 },
    ]);
    expect(pickOnce(make, same, request(SLO), { headroomStrategy: "best" })).toMatchObject({ prefill: 2, decode: 0 });
  });

  test("every pair negative: least bad favoured, weights blended - min + 1", () => {
    // Budget 90 ms: blended -15, -51, -95, -131, so weights 117, 81, 37, 1 again; 1 % explores uniformly.
    const k = make({ ...PARAMS, negativeHeadroomProb: 0.01 }, NO_TOPOLOGY);
    k.loadSnapshot(POOL);
    const req = request({ sloTtftMs: 100, sloTpotMs: 50 });
    expect(k.pick([req])[0]).toMatchObject({ positivePairs: 0 });
    const counts = frequencies(k, req, RUNS);
    const expected: Record<string, number> = { "0,2": 117, "0,3": 81, "1,2": 37, "1,3": 1 };
    for (const [key, w] of Object.entries(expected)) {
      const p = 0.99 * (w / 236) + 0.01 / 4;
      expect(Math.abs(share(counts, key) - p)).toBeLessThan(tolerance(p));
    }
    const outcomes = new Set(Array.from({ length: 200 }, (_, s) => k.pick([{ ...req, seed: s }])[0].outcome));
    expect(outcomes).toEqual(new Set(["negative_headroom", "explore"]));
  });

  test("sheddable requests are shed when no pair is positive, and never explore", () => {
    const req = request({ sloTtftMs: 100, sloTpotMs: 50, priority: -1 });
    expect(pickOnce(make, POOL, req)).toMatchObject({ outcome: "shed", prefill: -1, decode: -1, fallbacks: [] });
    const k = make({ ...PARAMS, shedSheddable: false, negativeHeadroomProb: 1 }, NO_TOPOLOGY);
    k.loadSnapshot(POOL);
    for (let s = 0; s < 50; s++) expect(k.pick([{ ...req, seed: s }])[0].outcome).toBe("negative_headroom");
    // With a positive pair a sheddable request is served normally.
    expect(pickOnce(make, POOL, { ...req, sloTtftMs: 300 }).outcome).toBe("positive_headroom");
  });

  test("exploration needs a negative pair: with probability 1 and none, positives are served", () => {
    const k = make({ ...PARAMS, negativeHeadroomProb: 1 }, NO_TOPOLOGY);
    k.loadSnapshot(POOL);
    for (let s = 0; s < 50; s++) expect(k.pick([request({ ...SLO, seed: s })])[0].outcome).toBe("positive_headroom");
    // One negative pair, (1,3) at SLO 280 (budget 252 < 255): every pick explores it.
    for (let s = 0; s < 50; s++) {
      expect(k.pick([request({ sloTtftMs: 280, sloTpotMs: 50, seed: s })])[0]).toMatchObject({ outcome: "explore", prefill: 1, decode: 3 });
    }
  });

  test("a pool of one both pod prefills locally whatever localPrefill says", () => {
    const one = snapshot([{ role: "both", prefillMs: 90, localPrefillMs: 150, decodeWaitMs: 10, tpotMs: 20 }]);
    for (const localPrefill of ["never", "threshold", "compete"] as const) {
      const r = pickOnce(make, one, request(SLO), { localPrefill });
      expect(r).toMatchObject({ outcome: "positive_headroom", prefill: -1, decode: 0, decodeOnly: true, pairs: 1 });
      expect(r).toMatchObject({ prefillTtftMs: 150, decodeTtftMs: 10, transferMs: 0, ttftMs: 160 });
      expect(r.blended).toBeCloseTo(0.8 * 110 + 0.2 * 25, 9);
    }
  });

  test("localPrefill never / threshold / compete decide whether local pairs compete", () => {
    // Remote (0,1): 100 + 10 + 5 = 115 ms; local on 1: 10 + 30 = 40 ms.
    const pool = snapshot([
      { role: "prefill", prefillMs: 100 },
      { role: "decode", decodeWaitMs: 10, localPrefillMs: 30, tpotMs: 20 },
    ]);
    const best = { headroomStrategy: "best" as const };
    const short = request({ ...SLO, inputTokens: 100 });
    const long = request({ ...SLO, inputTokens: 1024 });
    expect(pickOnce(make, pool, short, { ...best, localPrefill: "never" })).toMatchObject({ pairs: 1, prefill: 0 });
    expect(pickOnce(make, pool, short, { ...best, localPrefill: "threshold" })).toMatchObject({ pairs: 2, prefill: -1, decodeOnly: true, ttftMs: 40 });
    expect(pickOnce(make, pool, long, { ...best, localPrefill: "threshold" })).toMatchObject({ pairs: 1, prefill: 0 });
    // The threshold applies to the uncached prompt: 1024 tokens with a 90 % prefix hit is 102.4.
    expect(pickOnce(make, pool, { ...long, prefixHit: 0.9 }, { ...best, localPrefill: "threshold" }).pairs).toBe(2);
    expect(pickOnce(make, pool, short, { ...best, localPrefill: "threshold", pdThreshold: 0 }).pairs).toBe(1);
    expect(pickOnce(make, pool, long, { ...best, localPrefill: "compete" })).toMatchObject({ pairs: 2, prefill: -1, decodeOnly: true });
  });

  test("topology: transfer by link class node, rack, cross", () => {
    // 2,048 tokens of 128 KiB = 268,435,456 bytes over 450, 50 and 12.5 GB/s, plus the 5 ms overhead.
    const bytes = 2048 * 131072;
    const node = 5 + bytes / 450e6;
    const rack = 5 + bytes / 50e6;
    const cross = 5 + bytes / 12.5e6;
    const pods = (eligible: boolean[]) =>
      snapshot([
        { role: "prefill", prefillMs: 100, node: 0, rack: 0, eligible: eligible[0] },
        { role: "prefill", prefillMs: 100, node: 1, rack: 0, eligible: eligible[1] },
        { role: "prefill", prefillMs: 100, node: 2, rack: 1, eligible: eligible[2] },
        { role: "decode", decodeWaitMs: 10, tpotMs: 20, node: 0, rack: 0 },
      ]);
    const req = request({ ...SLO, inputTokens: 2048 });
    const best = { headroomStrategy: "best" as const };
    const sameNode = pickOnce(make, pods([true, true, true]), req, best, TOPOLOGY);
    expect(sameNode).toMatchObject({ prefill: 0, decode: 3 });
    expect(sameNode.transferMs).toBe(node);
    expect(sameNode.ttftMs).toBe(100 + (10 + node));
    expect(pickOnce(make, pods([false, true, true]), req, best, TOPOLOGY).transferMs).toBe(rack);
    expect(pickOnce(make, pods([false, false, true]), req, best, TOPOLOGY).transferMs).toBe(cross);
    // Without kvBytesPerToken, transfer is the constant overhead whatever the links.
    expect(pickOnce(make, pods([false, false, true]), req, best, NO_TOPOLOGY).transferMs).toBe(5);
    // A uniform draw over the three classes agrees with the oracle's classes.
    const o = oracle(pods([true, true, true]), { ...PARAMS }, TOPOLOGY, req);
    expect(o.pairs.map((x) => x.linkClass)).toEqual(["node", "rack", "cross"]);
  });

  test("fallbacks: other decode pods ranked by blended headroom with the chosen prefill pod", () => {
    const pool = snapshot([
      { role: "prefill", prefillMs: 100 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
      { role: "decode", decodeWaitMs: 30, tpotMs: 20 },
      { role: "decode", decodeWaitMs: 20, tpotMs: 20 },
    ]);
    const req = request(SLO);
    expect(pickOnce(make, pool, req, { headroomStrategy: "best" }).fallbacks).toEqual([3, 2]);
    expect(pickOnce(make, pool, req, { headroomStrategy: "best", fallbacks: 1 }).fallbacks).toEqual([3]);
    expect(pickOnce(make, pool, req, { headroomStrategy: "best", fallbacks: 0 }).fallbacks).toEqual([]);
  });

  test("in-batch accounting: each pick's load is seen by the next pick of the batch", () => {
    const pool = snapshot([
      { role: "prefill", prefillMs: 100 },
      { role: "prefill", prefillMs: 120 },
      { role: "decode", decodeWaitMs: 10, tpotMs: 20, waitPerRequestMs: 7, tpotPerRequestMs: 0.5, tpotPerTokenMs: 0.001 },
    ]);
    const k = make({ ...PARAMS, headroomStrategy: "best" }, NO_TOPOLOGY);
    k.loadSnapshot(pool);
    const [first, second] = k.pick([request(SLO), request(SLO)]);
    expect(first).toMatchObject({ prefill: 0, decode: 2, ttftMs: 115, tpotMs: 20 });
    // Pod 0's 100 ms prefill joins its queue (200 ms) so pod 1 (120 ms) wins; decode waits 7 ms more,
    // and TPOT grows by 0.5 + 0.001 * (1024 + 128) ms.
    expect(second).toMatchObject({ prefill: 1, decode: 2, decodeTtftMs: 17, ttftMs: 120 + (17 + 5) });
    expect(second.tpotMs).toBe(20 + (0.5 + 0.001 * (1024 + 128)));
    // A new batch starts again from the snapshot's load.
    expect(k.pick([request(SLO)])[0].prefill).toBe(0);
  });

  test("in-batch accounting adds a pod's prefill compute, not a remote TTFT that holds its queue already", () => {
    // Pod 0's curve is a remote TTFT of 300 ms at 1,024 tokens, of which 60 ms is compute (the load
    // curve, interpolated like the others); pod 1 is profile-predicted, 330 ms of compute.
    const pool = snapshot(
      [
        { role: "prefill", prefillMs: [200, 400], prefillLoadMs: [40, 80] },
        { role: "prefill", prefillMs: 330 },
        { role: "decode", decodeWaitMs: 10, tpotMs: 20 },
      ],
      [512, 1536],
    );
    const k = make({ ...PARAMS, headroomStrategy: "best", localPrefill: "never" }, NO_TOPOLOGY);
    k.loadSnapshot(pool);
    const loose = request({ sloTtftMs: 5000, sloTpotMs: 50 });
    const [first, second, third] = k.pick([loose, loose, loose]);
    expect(first).toMatchObject({ outcome: "positive_headroom", prefill: 0, prefillTtftMs: 300 });
    // 300 + 60 = 360 > 330: pod 1 now; with the whole TTFT added pod 0 would stand at 600.
    expect(second).toMatchObject({ prefill: 1, prefillTtftMs: 330 });
    expect(third).toMatchObject({ prefill: 0, prefillTtftMs: 360 });
  });

  test("curves interpolate between grid points, hold below the grid and extrapolate above it", () => {
    const pool = snapshot(
      [
        { role: "prefill", prefillMs: [10, 100] },
        { role: "decode", decodeWaitMs: 0, tpotMs: [20, 30] },
      ],
      [100, 1000],
    );
    const never = { localPrefill: "never" as const };
    const at = (inputTokens: number) => pickOnce(make, pool, request({ ...SLO, inputTokens }), never);
    expect(at(550).prefillTtftMs).toBe(55);
    expect(at(550).tpotMs).toBe(25);
    expect(at(50).prefillTtftMs).toBe(10);
    expect(at(2000).prefillTtftMs).toBe(10 + (1900 / 900) * 90);
    // The prefix hit shortens the prefill, not the context that sets TPOT.
    expect(at(1000).prefillTtftMs).toBe(100);
    expect(pickOnce(make, pool, request({ ...SLO, inputTokens: 1000, prefixHit: 0.45 }), never).prefillTtftMs).toBe(55);
  });
});
