// Load predictors on synthetic series: constant, a trend (the Kalman filter follows it), a cycle (ARIMA,
// searched in its thread, beats the last value), never negative, and the last value when data are too
// few or the search fails; and the search thread's priority. The ARIMA tests run the real search
// thread from dist/ (npm run build).

import fc from "fast-check";
import { afterAll, describe, expect, it, vi } from "vitest";
import { ArimaSearchThread } from "../src/planner/arima-search.js";
import { ArimaPredictor, ConstantPredictor, KalmanPredictor, type LoadPredictor } from "../src/planner/load-predictors.js";
import { threadNices } from "./fixtures/threads.js";

const thread = new ArimaSearchThread();
afterAll(() => thread.close());

/** Deterministic noise in [-0.5, 0.5). */
function noise(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  };
}

/** Mean absolute one-step error over series[from..]: predict, then observe the actual value. */
async function oneStepMae(p: LoadPredictor, series: number[], from: number): Promise<number> {
  let sum = 0;
  for (let t = 0; t < series.length; t++) {
    if (t >= from) sum += Math.abs((p.predict() ?? 0) - series[t]!);
    p.observe(series[t]!);
    if (p instanceof ArimaPredictor) await p.settled();
  }
  return sum / (series.length - from);
}

describe("constant", () => {
  it("predicts the last value and nothing before the first", () => {
    const p = new ConstantPredictor();
    expect(p.predict()).toBeUndefined();
    for (const v of [3, 7, 5]) p.observe(v);
    expect(p.predict()).toBe(5);
    p.observe(NaN);
    p.observe(-1);
    expect(p.predict()).toBe(5);
  });
});

describe("kalman (local linear trend)", () => {
  it("holds a constant series", () => {
    const p = new KalmanPredictor();
    for (let i = 0; i < 10; i++) p.observe(42);
    expect(p.predict()).toBeCloseTo(42, 9);
  });

  it("follows a trend that the last value lags", async () => {
    const r = noise(7);
    const trend = Array.from({ length: 40 }, (_, t) => 100 + 8 * t + 4 * r());
    const kalman = await oneStepMae(new KalmanPredictor(), trend, 20);
    const constant = await oneStepMae(new ConstantPredictor(), trend, 20);
    expect(constant).toBeGreaterThan(7);
    expect(kalman).toBeLessThan(constant / 3);
  });

  it("starts from the first value, then from the first two", () => {
    const p = new KalmanPredictor();
    p.observe(10);
    expect(p.predict()).toBe(10);
    p.observe(14);
    expect(p.predict()).toBe(18);
  });

  it("never predicts below zero, whatever the series", () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: 0, max: 1e6, noNaN: true }), { maxLength: 30 }), (series) => {
        const p = new KalmanPredictor();
        for (const v of series) {
          p.observe(v);
          expect(p.predict()!).toBeGreaterThanOrEqual(0);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("arima (order search in a thread)", () => {
  it("beats the last value on a cycle with noise", async () => {
    const r = noise(11);
    const cycle = Array.from({ length: 70 }, (_, t) => 200 + 80 * Math.sin((2 * Math.PI * t) / 10) + 10 * r());
    const arima = new ArimaPredictor({ searcher: thread.search, searchEvery: 10 });
    const arimaMae = await oneStepMae(arima, cycle, 30);
    const constantMae = await oneStepMae(new ConstantPredictor(), cycle, 30);
    expect(arimaMae).toBeLessThan(constantMae * 0.6);
    const described = arima.describe();
    expect(described.order).not.toBe("(0,1,0)");
    expect(described.searches).toBe(6);
    expect(described.failedSearches).toBe(0);
  });

  it("beats the last value on an AR(1) process", async () => {
    const r = noise(3);
    const series: number[] = [];
    let x = 0;
    for (let t = 0; t < 80; t++) {
      x = -0.7 * x + 20 * r();
      series.push(100 + x);
    }
    const arimaMae = await oneStepMae(new ArimaPredictor({ searcher: thread.search, searchEvery: 10 }), series, 40);
    const constantMae = await oneStepMae(new ConstantPredictor(), series, 40);
    expect(arimaMae).toBeLessThan(constantMae * 0.8);
  });

  it("predicts the last value until it has enough points, without searching", () => {
    const p = new ArimaPredictor({ searcher: thread.search });
    expect(p.predict()).toBeUndefined();
    for (const v of [5, 9, 4, 8]) p.observe(v);
    expect(p.predict()).toBe(8);
    expect(p.describe().searches).toBe(0);
  });

  it("never predicts below zero", async () => {
    const p = new ArimaPredictor({ searcher: thread.search, minPoints: 20 });
    // A steady fall towards zero.
    for (let t = 0; t < 25; t++) p.observe(98 - 4 * t);
    await p.settled();
    expect(p.describe().order).not.toBeNull();
    expect(p.predict()!).toBeGreaterThanOrEqual(0);
  });

  it("takes a forecast below zero for a failed fit: the last value, and a new search", async () => {
    const p = new ArimaPredictor({ searcher: thread.search, minPoints: 20, searchEvery: 1000 });
    // A series that alternates gets a model that swings: after a jump to 150 it forecasts below zero.
    for (let t = 0; t < 20; t++) p.observe((t % 2 ? 40 : 60) + ((t * 7) % 5) - 2);
    await p.settled();
    expect(p.describe().searches).toBe(1);
    expect(p.describe().order).not.toBeNull();
    p.observe(150);
    // Before: the forecast was clamped to 0 (no load at all) until the next search.
    expect(p.predict()).toBe(150);
    expect(p.describe()).toMatchObject({ order: null, failedForecasts: 1 });
    // Without a model the next observation searches at once.
    p.observe(150);
    await p.settled();
    expect(p.describe().searches).toBe(2);
    expect(p.predict()!).toBeGreaterThanOrEqual(0);
  });

  it("keeps the last value when the search fails", async () => {
    const failing = new ArimaSearchThread({ timeoutMs: 1 });
    try {
      const p = new ArimaPredictor({ searcher: failing.search, minPoints: 20 });
      for (let t = 0; t < 20; t++) p.observe(10 + (t % 3));
      await p.settled();
      expect(p.describe()).toMatchObject({ failedSearches: 1, order: null });
      expect(p.predict()).toBe(11);
    } finally {
      failing.close();
    }
  });
});

describe("the ARIMA search thread", () => {
  const series = (n: number, k = 0) => Array.from({ length: n }, (_, t) => 10 + k + 5 * Math.sin(t / 3) + ((t * 7) % 5));
  // The timeouts are the main thread's setTimeout, faked here so that nothing depends on how fast the
  // host runs a search; the thread's answers are messages, not timers, and arrive as they do.
  const withFakeTimeouts = async (body: () => Promise<void>) => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      await body();
    } finally {
      vi.useRealTimers();
    }
  };

  it("times a search from when the thread runs it, not from when it was asked", () =>
    withFakeTimeouts(async () => {
      const searcher = new ArimaSearchThread({ timeoutMs: 1000, lowPriority: false });
      try {
        // Pools' predictors ask at once; the thread runs them one after another.
        const asked = [0, 1, 2, 3].map((k) => searcher.search(series(20, k), 10));
        // Before: a timer per search from when it was asked, so the third timed out while queued and
        // the restart failed the fourth with it.
        expect(vi.getTimerCount()).toBe(1);
        const answers = await Promise.all(asked);
        expect(answers.map((a) => a === null)).toEqual([false, false, false, false]);
        expect(searcher.answered).toBe(4);
      } finally {
        searcher.close();
      }
    }));

  it("fails only the search that overran its timeout; those queued behind it run on a new thread", () =>
    withFakeTimeouts(async () => {
      const searcher = new ArimaSearchThread({ timeoutMs: 500, lowPriority: false });
      try {
        const first = searcher.search(series(20), 10);
        const after = [0, 1, 2].map((k) => searcher.search(series(20, k + 1), 10));
        // The first has not been answered (its answer needs a turn of the event loop): it overruns.
        vi.advanceTimersByTime(500);
        expect(await first).toBeNull();
        const answers = await Promise.all(after);
        expect(answers.map((a) => a?.id)).toEqual([2, 3, 4]);
        expect(searcher.inFlight).toBe(0);
      } finally {
        searcher.close();
      }
    }));

  /** Ids of this process's threads at the lowest priority (nice 19). */
  const lowestPriorityThreads = () => new Set([...threadNices()].filter(([, nice]) => nice === 19).map(([tid]) => tid));
  const added = (before: Set<string>) => [...lowestPriorityThreads()].filter((tid) => !before.has(tid));

  it.skipIf(process.platform !== "linux")("runs at the lowest priority, so that fits give way to picks, unless told not to", async () => {
    const series = Array.from({ length: 30 }, (_, t) => 10 + (t % 5));
    const normal = new ArimaSearchThread({ lowPriority: false });
    const low = new ArimaSearchThread();
    try {
      const before = lowestPriorityThreads();
      // Polled: a thread an earlier test terminated may still be on its way out of the process.
      expect(await normal.search(series, 10)).not.toBeNull();
      await vi.waitFor(() => expect(added(before)).toEqual([]));
      expect(await low.search(series, 10)).not.toBeNull();
      await vi.waitFor(() => expect(added(before)).toHaveLength(1));
    } finally {
      normal.close();
      low.close();
    }
  });
});
