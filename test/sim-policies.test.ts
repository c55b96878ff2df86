// The baseline policies on tiny cases: random and round-robin spread per role, queue-kv takes the
// arg-max of its two min-max normalised scores from scraped metrics only, and seed-pd-slo follows the
// seed's heuristics, classification and weighted draws.

import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { loadProfiles, nominalCapacity } from "../src/sim/capacity.js";
import type { Placement } from "../src/sim/pods.js";
import {
  QueueKvPolicy,
  RandomPolicy,
  RoundRobinPolicy,
  SeedPdSloPolicy,
  normalisedLowerIsBetter,
  seedHeuristics,
  weightedDraw,
  type PolicyContext,
} from "../src/sim/policies.js";
import type { SimRequest } from "../src/sim/workload.js";
import { tinyScenario } from "./fixtures/sim-scenario.js";

// Pods of the tiny scenario, in order: p0, p1 (prefill), d0, d1 (decode); a third prefill pod p2 here.
const scenario = tinyScenario({
  cluster: {
    pods: [
      { name: "p", count: 3, role: "prefill" },
      { name: "d", count: 2, role: "decode" },
    ],
  },
});
const P0 = 0;
const P1 = 1;
const P2 = 2;
const D0 = 3;
const D1 = 4;

function context(): PolicyContext {
  const profiles = loadProfiles(scenario);
  return {
    scenario,
    pods: scenario.cluster.pods,
    clock: new ManualClock(0),
    profiles,
    capacity: nominalCapacity(scenario, profiles),
    truth: {
      gauges: () => {
        throw new Error("baselines must not read the true state");
      },
      workAheadMs: () => {
        throw new Error("baselines must not read the true state");
      },
    },
  };
}

function request(seed: number, over: Partial<SimRequest> = {}): SimRequest {
  return { id: `r${seed}`, index: seed, arrivalMs: 0, inputTokens: 200, outputTokens: 50, sloLevel: "high", sloTtftMs: 300, sloTpotMs: 30, seed, ...over };
}

const metrics = (waiting: number, running: number, kvUsage: number) => ({ scrapedAtMs: 0, waiting, running, kvUsage });

function counts(picks: Placement[], key: "prefill" | "decode"): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of picks) out.set(p[key], (out.get(p[key]) ?? 0) + 1);
  return out;
}

const seeds = (n: number) => Array.from({ length: n }, (_, i) => Math.imul(i + 1, 0x9e3779b1) >>> 0);

describe("baseline policies", () => {
  it("round-robin cycles through each role's pods independently", () => {
    const policy = new RoundRobinPolicy(context());
    const picks = seeds(6).map((s) => policy.pick());
    expect(picks.map((p) => p.prefill)).toEqual([P0, P1, P2, P0, P1, P2]);
    expect(picks.map((p) => p.decode)).toEqual([D0, D1, D0, D1, D0, D1]);
  });

  it("random draws each role uniformly, the same for the same request seed", () => {
    const policy = new RandomPolicy(context());
    expect(policy.pick(request(5))).toEqual(policy.pick(request(5)));
    const picks = seeds(6000).map((s) => policy.pick(request(s)));
    for (const n of counts(picks, "prefill").values()) expect(n).toBeGreaterThan(1800);
    for (const n of counts(picks, "decode").values()) expect(n).toBeGreaterThan(2800);
  });

  it("queue-kv scores min-max normalised queue and KV, weight 1 each, and takes the arg-max per role", () => {
    expect(normalisedLowerIsBetter([0, 1, 2], Float64Array.from([3, 0, 1]))).toEqual([0, 1, 2 / 3]);
    expect(normalisedLowerIsBetter([0, 1], Float64Array.from([0.4, 0.4]))).toEqual([1, 1]);
    const policy = new QueueKvPolicy(context());
    // Prefill: queue scores 0, 1, 2/3 and KV scores 0.75, 0, 1: p2 (1.67) beats p1 (1) and p0 (0.75).
    policy.observe(P0, metrics(3, 1, 0.2));
    policy.observe(P1, metrics(0, 1, 0.5));
    policy.observe(P2, metrics(1, 1, 0.1));
    // Decode: d1 has the longer queue but much less KV in use: 0 + 1 against 1 + 0, a tie.
    policy.observe(D0, metrics(0, 50, 0.9));
    policy.observe(D1, metrics(4, 10, 0.2));
    const picks = seeds(2000).map((s) => policy.pick(request(s)));
    expect(counts(picks, "prefill")).toEqual(new Map([[P2, 2000]]));
    const decode = counts(picks, "decode");
    expect(decode.get(D0)! + decode.get(D1)!).toBe(2000);
    expect(decode.get(D0)!).toBeGreaterThan(900);
    expect(decode.get(D1)!).toBeGreaterThan(900);
    // Scraped metrics only: nothing changes between scrapes, however many picks land on p2.
    expect(policy.pick(request(1)).prefill).toBe(P2);
  });

  it("seed-pd-slo predicts with the seed's heuristics from the decode pod's scrape", () => {
    expect(seedHeuristics.prefillTtftMs(200)).toBe(100);
    expect(seedHeuristics.decodeTtftMs({ waiting: 3 })).toBe(30);
    expect(seedHeuristics.decodeTtftMs(undefined)).toBe(10);
    expect(seedHeuristics.decodeTpotMs({ running: 2, kvUsage: 0.5 })).toBe(35);
  });

  it("seed-pd-slo draws among positive pairs 99 % of the time and explores the negative ones 1 %", () => {
    const policy = new SeedPdSloPolicy(context());
    // High SLO (budgets 270 / 27 ms), 200 tokens: TTFT 100 + 10 x waiting + 5. d0 (TPOT 20 + 5 x 1 = 25)
    // is positive with every prefill pod; d1 (TPOT 20 + 5 x 2 = 30) is negative.
    policy.observe(D0, metrics(0, 1, 0));
    policy.observe(D1, metrics(0, 2, 0));
    const picks = seeds(20_000).map((s) => policy.pick(request(s)));
    const decode = counts(picks, "decode");
    const explored = decode.get(D1)! / picks.length;
    expect(explored).toBeGreaterThan(0.006);
    expect(explored).toBeLessThan(0.014);
    // The prefill pod does not enter the seed's predictions: positive pairs differ only by d, so the
    // prefill pods are drawn uniformly.
    for (const n of counts(picks, "prefill").values()) expect(n).toBeGreaterThan(6300);
  });

  it("seed-pd-slo favours the least bad pair when none is positive, by blended headroom - min + 1", () => {
    const policy = new SeedPdSloPolicy(context());
    // Both decode pods miss the TPOT budget; d0 by less: blended differs by 0.2 x 5 x 10 = 10 ms, so
    // d0's pairs weigh 11 against d1's 1.
    policy.observe(D0, metrics(0, 10, 0));
    policy.observe(D1, metrics(0, 20, 0));
    const picks = seeds(12_000).map((s) => policy.pick(request(s)));
    const share = counts(picks, "decode").get(D0)! / picks.length;
    expect(share).toBeGreaterThan(11 / 12 - 0.01);
    expect(share).toBeLessThan(11 / 12 + 0.01);
    const pair = (d: number, blended: number) => ({ pair: { prefill: P0, decode: d }, blended });
    expect(weightedDraw([pair(D0, -10), pair(D1, -20)], 0.9).decode).toBe(D0);
    expect(weightedDraw([pair(D0, -10), pair(D1, -20)], 0.99).decode).toBe(D1);
  });
});
