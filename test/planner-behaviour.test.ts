// The SLO behaviours of the planners on a ManualClock with real planners and the advisory actuator:
// proactive vs reactive, burst protection, step-ups on utilization and on violations, one-step
// scale-down after a cooldown and never under violations, cost optimisation, never below one worker,
// and intervals skipped on bad data. Worker counts follow from the shipped profile (see the comments:
// medium, TP=1 at ISL 2000 / OSL 150, prefills 38,870 tok/s and decodes 7,844 tok/s per worker).

import { describe, expect, it } from "vitest";
import type { PoolUtilization } from "../src/planner/types.js";
import { AS_PROFILED_TPOT_MS, feed, pool, setup, type PoolOverrides } from "./fixtures/planner-pools.js";

const layout = (prefill: number, decode: number, both: number) => ({ prefill, decode, both });
const desiredOf = (s: { desired: { prefill: number; decode: number; both: number } }) => layout(s.desired.prefill, s.desired.decode, s.desired.both);

// A medium pool with room to grow, no burst protection, sized every 10 s.
const medium = (name: string, planner: PoolOverrides["planner"] = {}, over: PoolOverrides = {}) =>
  pool("medium", { name, maxGpus: 8, ...over, planner: { loadPredictor: "constant", burstProtection: false, ...planner } });

describe("proactive and reactive", () => {
  it("a proactive pool sizes for the predicted load, a reactive one for the observed", () => {
    const t = setup([medium("pro", { loadPredictor: "kalman", proactive: true }), medium("re", { loadPredictor: "kalman", proactive: false })]);
    for (const ratePerS of [10, 20, 30]) feed(t, { pro: { ratePerS, tpotMs: AS_PROFILED_TPOT_MS }, re: { ratePerS, tpotMs: AS_PROFILED_TPOT_MS } }, 10);
    const pro = t.state("pro");
    const re = t.state("re");
    // The Kalman filter continues 10, 20, 30 to 40 req/s.
    expect(pro.load!.predicted.ratePerS).toBeCloseTo(40, 6);
    expect(pro.load!.sizedFor).toBe("predicted");
    expect(re.load!.sizedFor).toBe("observed");
    // Prefill: 40 x 2000 / (38,870 x 0.85) = 2.42 -> 3 workers; 30 req/s: 1.82 -> 2. Decode fits the both worker.
    expect(desiredOf(pro)).toEqual(layout(3, 0, 1));
    expect(desiredOf(re)).toEqual(layout(2, 0, 1));
    t.planners.close();
  });
});

describe("burst protection", () => {
  it("scales up at once when the short-window rate jumps past the prediction", () => {
    const every30s = { adjustmentIntervalMs: 30_000 };
    const t = setup([medium("guarded", { ...every30s, burstProtection: true }), medium("plain", every30s)]);
    // At 2 req/s the profile's step is 7 ms (batch 3): the burst is sized with the correction seen here.
    feed(t, { guarded: { ratePerS: 2, tpotMs: 7 }, plain: { ratePerS: 2, tpotMs: 7 } }, 30);
    expect(t.state("guarded").load!.predicted.ratePerS).toBe(2);
    // 40 req/s from t = 30 s; the next adjustment is at t = 60 s.
    feed(t, { guarded: { ratePerS: 40, tpotMs: AS_PROFILED_TPOT_MS }, plain: { ratePerS: 40, tpotMs: AS_PROFILED_TPOT_MS } }, 15);
    const guarded = t.state("guarded");
    expect(guarded.decisions.length).toBeGreaterThan(0);
    expect(guarded.decisions.every((d) => d.reason === "burst" && d.atMs > 30_000 && d.atMs < 60_000)).toBe(true);
    // At 40 req/s: prefill 2.42 -> 3 workers, decode 0.9 -> the both worker.
    expect(desiredOf(guarded)).toEqual(layout(3, 0, 1));
    expect(guarded.decisions[0]!.details[0]).toMatch(/^burst: [\d.]+ req\/s over the last [\d.]+ s, above 1\.5 x the 2\.00 req\/s predicted/);
    // The first step came within seconds of the jump.
    expect(guarded.decisions.at(-1)!.atMs).toBeLessThanOrEqual(35_000);
    expect(desiredOf(t.state("plain"))).toEqual(layout(0, 0, 1));
    t.planners.close();
  });

  it("ignores a short window with few arrivals", () => {
    const t = setup([medium("guarded", { burstProtection: true })], { tuning: { burstMinArrivals: 50 } });
    feed(t, { guarded: { ratePerS: 4 } }, 10);
    expect(t.state("guarded").decisions).toEqual([]);
    t.planners.close();
  });
});

describe("forced step-ups", () => {
  it("adds a decode worker when KV use passes the threshold, then waits for it to start", () => {
    const util: PoolUtilization = { prefillQueueUtil: 0.2, kvUtil: 0.8 };
    const t = setup([medium("m")], { utilization: () => util, tuning: { startupDelayMs: 25_000 } });
    feed(t, { m: { ratePerS: 1 } }, 10);
    let s = t.state("m");
    expect(desiredOf(s)).toEqual(layout(0, 1, 1));
    expect(s.decisions[0]!.reason).toBe("utilization");
    expect(s.decisions[0]!.details[0]).toBe("step up: KV cache at 80.0% (threshold 70.0%)");
    feed(t, { m: { ratePerS: 1 } }, 20);
    s = t.state("m");
    expect(s.decisions).toHaveLength(1);
    expect(desiredOf(s)).toEqual(layout(0, 1, 1));
    feed(t, { m: { ratePerS: 1 } }, 10);
    expect(desiredOf(t.state("m"))).toEqual(layout(0, 2, 1));
    t.planners.close();
  });

  it("adds a prefill worker when the prefill queue passes the threshold", () => {
    const t = setup([medium("m")], { utilization: () => ({ prefillQueueUtil: 0.95, kvUtil: 0.1 }) });
    feed(t, { m: { ratePerS: 1 } }, 10);
    expect(desiredOf(t.state("m"))).toEqual(layout(1, 0, 1));
    t.planners.close();
  });

  it("adds a worker on the side whose target is missed beyond the allowance", () => {
    const t = setup([medium("tpot"), medium("ttft"), medium("within"), medium("few")]);
    feed(
      t,
      {
        // A third of the requests miss: over the 10 % allowance.
        tpot: { ratePerS: 3, missShare: 0.3, miss: { tpotMs: 80 } },
        ttft: { ratePerS: 3, missShare: 0.3, miss: { ttftMs: 900 } },
        // One in twenty: within it.
        within: { ratePerS: 3, missShare: 0.05, miss: { tpotMs: 80 } },
        // Five requests in the interval are too few to judge.
        few: { ratePerS: 0.5, missShare: 1, miss: { tpotMs: 80 } },
      },
      10,
    );
    expect(desiredOf(t.state("tpot"))).toEqual(layout(0, 1, 1));
    expect(t.state("tpot").decisions[0]!.reason).toBe("violations");
    expect(t.state("tpot").decisions[0]!.details[0]).toBe("step up: 33.3% of 30 requests missed the SLO (allowed 10.0%)");
    expect(desiredOf(t.state("ttft"))).toEqual(layout(1, 0, 1));
    expect(desiredOf(t.state("within"))).toEqual(layout(0, 0, 1));
    expect(desiredOf(t.state("few"))).toEqual(layout(0, 0, 1));
    t.planners.close();
  });
});

describe("scale-down", () => {
  it("goes one step at a time after the cooldown, and never below one worker", () => {
    const t = setup([medium("m")]);
    // 30 req/s: prefill 1.82 -> 2 workers.
    feed(t, { m: { ratePerS: 30 } }, 10);
    expect(desiredOf(t.state("m"))).toEqual(layout(2, 0, 1));
    const history: ReturnType<typeof desiredOf>[] = [];
    for (let i = 0; i < 6; i++) {
      feed(t, { m: { ratePerS: 0.5 } }, 10);
      history.push(desiredOf(t.state("m")));
    }
    // Cooldown 20 s (two intervals): t = 20 held, 30 down, 40 held, 50 down, then one both worker.
    expect(history).toEqual([layout(2, 0, 1), layout(1, 0, 1), layout(1, 0, 1), layout(0, 0, 1), layout(0, 0, 1), layout(0, 0, 1)]);
    const s = t.state("m");
    expect(s.decisions.map((d) => d.reason)).toEqual(["scale_down", "scale_down", "sizing"]);
    expect(s.decisions[0]!.details[0]).toBe("scale down one prefill worker toward 0P/0D/1B");
    feed(t, { m: { ratePerS: 0 } }, 100);
    expect(desiredOf(t.state("m"))).toEqual(layout(0, 0, 1));
    t.planners.close();
  });

  it("is held while violations exceed the allowance", () => {
    // Step-ups wait for starting workers for good, so only the scale-down rule acts.
    const t = setup([medium("m")], { tuning: { startupDelayMs: 1e9 } });
    feed(t, { m: { ratePerS: 30 } }, 10);
    feed(t, { m: { ratePerS: 3, missShare: 0.3, miss: { tpotMs: 80 } } }, 40);
    const s = t.state("m");
    expect(desiredOf(s)).toEqual(layout(2, 0, 1));
    expect(s.decisions).toHaveLength(1);
    expect(s.observation!.violationRate).toBeCloseTo(1 / 3, 9);
    // Without violations the cooldown has long passed: one step down at the next interval.
    feed(t, { m: { ratePerS: 3 } }, 10);
    expect(desiredOf(t.state("m"))).toEqual(layout(1, 0, 1));
    t.planners.close();
  });

  it("is held by violations over the allowance even with fewer completions than a step-up needs", () => {
    const t = setup([medium("m")], { tuning: { startupDelayMs: 1e9 } });
    feed(t, { m: { ratePerS: 30 } }, 10);
    // 0.9 req/s, every request missing: 9 completions an interval, under minSamples (10).
    feed(t, { m: { ratePerS: 0.9, missShare: 1, miss: { tpotMs: 80 } } }, 60);
    const s = t.state("m");
    expect(s.observation!.completions).toBeLessThan(10);
    expect(desiredOf(s)).toEqual(layout(2, 0, 1));
    expect(s.decisions).toHaveLength(1);
    t.planners.close();
  });
});

describe("scale-down stabilisation", () => {
  it("keeps a worker while the load hovers at a worker boundary", async () => {
    // 30 s intervals, the default 60 s cooldown and window. 31 req/s needs 2 prefill workers (1.88),
    // 35 req/s 3 (2.12); the load alternates between them.
    const t = setup([medium("m", { adjustmentIntervalMs: 30_000 })]);
    for (let i = 0; i < 40; i++) feed(t, { m: { ratePerS: i % 2 ? 35 : 31 } }, 30);
    const s = t.state("m");
    // Before: after each cooldown the first low interval removed the worker, and the next high one
    // added it back at once (9 scale-downs and 11 scale-ups in 20 minutes).
    expect(s.decisions.map((d) => d.reason)).toEqual(["sizing", "sizing"]);
    expect(desiredOf(s)).toEqual(layout(3, 0, 1));
    t.planners.close();
  });

  it("scales down once the target has stayed lower for the whole window", () => {
    const t = setup([medium("m")], { tuning: { cooldownMs: 10_000, scaleDownWindowMs: 30_000 } });
    feed(t, { m: { ratePerS: 30, tpotMs: AS_PROFILED_TPOT_MS } }, 10);
    expect(desiredOf(t.state("m"))).toEqual(layout(2, 0, 1));
    const prefill: number[] = [];
    for (let i = 0; i < 5; i++) {
      feed(t, { m: { ratePerS: 10, tpotMs: AS_PROFILED_TPOT_MS } }, 10);
      prefill.push(t.state("m").desired.prefill);
    }
    // 10 req/s fits the both worker (0.61 + 0.27): lower from t = 20 s, but the 2-prefill target of
    // t = 10 s stays in the window until t = 40 s; then one step per 10 s cooldown.
    expect(prefill).toEqual([2, 2, 1, 0, 0]);
    t.planners.close();
  });
});

describe("scale-down below the observed load", () => {
  it("never leaves fewer workers than the load just observed needs, whatever the forecast", () => {
    const t = setup([medium("m", { loadPredictor: "kalman", proactive: true })], { tuning: { cooldownMs: 0 } });
    // 60 req/s: prefill 3.63 -> 4 workers. The load falls to 20 req/s (prefill 1.21 -> 2 workers) and
    // stays; the Kalman trend carries the fall on to 0 and takes several intervals to come back.
    feed(t, { m: { ratePerS: 60 } }, 10);
    feed(t, { m: { ratePerS: 40 } }, 10);
    const seen: { predicted: number; prefill: number }[] = [];
    for (let i = 0; i < 8; i++) {
      feed(t, { m: { ratePerS: 20 } }, 10);
      const s = t.state("m");
      seen.push({ predicted: s.load!.predicted.ratePerS, prefill: s.desired.prefill });
    }
    // The forecast alone would need one prefill worker or none for most of these intervals.
    expect(seen.filter((x) => x.predicted < 10).length).toBeGreaterThanOrEqual(4);
    expect(seen.map((x) => x.prefill)).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
    t.planners.close();
  });
});

describe("scale-down below the observed prompt and answer lengths", () => {
  it("never leaves fewer workers than the ISL just observed needs, whatever the forecast", () => {
    const t = setup([medium("m", { loadPredictor: "kalman", proactive: true })], { tuning: { cooldownMs: 0 } });
    // Prompts shorten from 12,000 to 4,000 tokens and stay there; the Kalman trend carries the fall on
    // (to 1 token) and takes several intervals to come back. At 20 req/s, 4,000-token prompts need
    // 80,000 / (37,289 x 0.85) = 2.52 -> 3 prefill workers.
    for (const isl of [12_000, 8000]) feed(t, { m: { ratePerS: 20, isl } }, 10);
    const seen: { predictedIsl: number; prefill: number }[] = [];
    for (let i = 0; i < 6; i++) {
      feed(t, { m: { ratePerS: 20, isl: 4000 } }, 10);
      const s = t.state("m");
      seen.push({ predictedIsl: s.load!.predicted.isl, prefill: s.desired.prefill });
    }
    expect(seen.filter((x) => x.predictedIsl < 2000).length).toBeGreaterThanOrEqual(3);
    expect(seen.map((x) => x.prefill)).toEqual([3, 3, 3, 3, 3, 3]);
    t.planners.close();
  });
});

describe("cost optimisation", () => {
  // Low pools, TP=1 at ISL 200 / OSL 1000 and 25 req/s: prefill 5,000 / (24,182 x 0.95) = 0.22 workers;
  // decode (KV-bound at batch 620, 19,722 tok/s) 25,000 / (19,722 x 0.95) = 1.33 workers.
  const low = (name: string, costOptimization: boolean) =>
    pool("low", { name, maxGpus: 4, planner: { costOptimization, loadPredictor: "constant" } });

  it("prefers fewer workers, and scales down sooner", () => {
    const t = setup([low("cheap", true), low("plain", false)], { cluster: { gpuBudget: 8, gpuHourPrice: 2 } });
    const load = { ratePerS: 25, isl: 200, osl: 1000 };
    feed(t, { cheap: load, plain: load }, 10);
    // ceil(0.22 + 1.33) = 2 workers that prefill locally, against 1 prefill + 2 decode-capable.
    expect(desiredOf(t.state("cheap"))).toEqual(layout(0, 0, 2));
    expect(desiredOf(t.state("plain"))).toEqual(layout(1, 1, 1));
    // Idle: the cost-optimised pool's cooldown is half of 20 s.
    feed(t, { cheap: { ratePerS: 0 }, plain: { ratePerS: 0 } }, 10);
    expect(desiredOf(t.state("cheap"))).toEqual(layout(0, 0, 1));
    expect(desiredOf(t.state("plain"))).toEqual(layout(1, 1, 1));
    t.planners.close();
  });
});

describe("the GPU budget across pools", () => {
  it("makes a lower-priority pool yield when a higher-priority one needs GPUs", () => {
    const high = pool("high", { maxGpus: 8, planner: { loadPredictor: "constant", burstProtection: false } });
    const low = pool("low", { maxGpus: 4, planner: { loadPredictor: "constant" } });
    const t = setup([high, low], { cluster: { gpuBudget: 6, gpuHourPrice: 2 } });
    feed(t, { low: { ratePerS: 60 } }, 10);
    // The low pool takes what the high pool does not use: 4 workers of 1 GPU.
    expect(t.state("low").desired.gpus).toBe(4);
    expect(t.planners.state().desiredGpus).toBe(6);
    feed(t, { high: { ratePerS: 60 }, low: { ratePerS: 60 } }, 10);
    const h = t.state("high");
    const l = t.state("low");
    // 6 GPUs: 2 for each pool's minimum worker (TP 2 + TP 1), high takes one more TP=2 worker, low the last GPU.
    expect(h.desired.gpus).toBe(4);
    expect(l.desired.gpus).toBe(2);
    expect(t.planners.state().desiredGpus).toBe(6);
    const yielded = l.decisions[0]!;
    expect(yielded.reason).toBe("budget");
    expect(yielded.details[0]).toBe("budget: yields to pool high (priority 1); 2 workers granted");
    t.planners.close();
  });

  it("a lower-priority pool does not take GPUs a higher-priority pool held back by the budget wants, whatever their order", () => {
    for (const order of [["a", "b", "c"], ["c", "b", "a"]]) {
      const byName = { a: 1, b: 2, c: 3 } as Record<string, number>;
      const pools = order.map((name) => pool("medium", { name, sloPriority: byName[name], maxGpus: 4, planner: { loadPredictor: "constant", burstProtection: false } }));
      const t = setup(pools, { cluster: { gpuBudget: 6, gpuHourPrice: 2 }, tuning: { cooldownMs: 0 } });
      for (let i = 0; i < 5; i++) feed(t, { a: { ratePerS: i === 0 ? 60 : 1 }, b: { ratePerS: 60 }, c: { ratePerS: 60 } }, 10);
      // Once every pool has said what it wants (the first interval), c never grows only to be cut back.
      expect(t.state("c").decisions.filter((d) => d.reason === "budget" && d.atMs > 10_000), order.join("")).toEqual([]);
      t.planners.close();
    }
  });
});

describe("bad or missing data", () => {
  it("skips sizing when pod utilization is not a number, logging the cause once", () => {
    const t = setup([medium("m")], { utilization: () => ({ prefillQueueUtil: NaN, kvUtil: 0.5 }) });
    feed(t, { m: { ratePerS: 40 } }, 30);
    const s = t.state("m");
    expect(desiredOf(s)).toEqual(layout(0, 0, 1));
    expect(s.lastSkip).toMatchObject({ cause: "utilization_invalid" });
    expect(t.logger.lines.filter((l) => l.message.startsWith("planner skipped sizing"))).toHaveLength(1);
    t.planners.close();
  });

  it("sizes from load and violations when the engine knows nothing of the pool's pods", async () => {
    let known = false;
    const t = setup([medium("m")], { utilization: () => (known ? { prefillQueueUtil: 0.95, kvUtil: 0.1 } : undefined) });
    // 40 req/s, half of the TTFTs missed: 3 prefill workers for the load (2.42), which is also the step up.
    feed(t, { m: { ratePerS: 40, missShare: 0.5, miss: { ttftMs: 5000 } } }, 10);
    const s = t.state("m");
    expect(s.lastSkip).toBeNull();
    expect(desiredOf(s)).toEqual(layout(3, 0, 1));
    expect(s.decisions[0]!.reason).toBe("violations");
    expect(await t.registry.getSingleMetricAsString("headroom_planner_skipped_intervals_total")).not.toContain("utilization_missing");
    expect(t.logger.lines.filter((l) => l.message.startsWith("no pod utilization for the pool"))).toHaveLength(1);
    // Utilization comes back, over the threshold: its step-ups resume (after the start-up delay).
    known = true;
    feed(t, { m: { ratePerS: 40 } }, 60);
    expect(t.logger.lines.some((l) => l.message === "pod utilization for the pool again")).toBe(true);
    expect(t.state("m").decisions[0]).toMatchObject({ reason: "utilization", to: layout(4, 0, 1) });
    t.planners.close();
  });

  it("keeps one worker through intervals without any request", () => {
    const t = setup([medium("m")]);
    feed(t, {}, 60);
    const s = t.state("m");
    expect(desiredOf(s)).toEqual(layout(0, 0, 1));
    expect(s.decisions).toEqual([]);
    expect(s.observation).toMatchObject({ completions: 0, ratePerS: 0 });
    t.planners.close();
  });
});
