// A pool's observations per interval: counts and rate, mean ISL/OSL, latencies at the pool's
// percentile, violations against its targets, and the short arrival window burst protection reads.

import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { PoolObserver } from "../src/planner/observations.js";

function observer(clock = new ManualClock()) {
  return { clock, obs: new PoolObserver({ clock, percentile: 90, targets: { ttftMs: 300, tpotMs: 30 } }) };
}

describe("an interval's observations", () => {
  it("counts completions, means and the percentile of TTFT and TPOT", () => {
    const { clock, obs } = observer();
    // TTFT 1..100 ms, TPOT 0.25..25 ms: p90 is the 90th value; all within 300 / 30 ms.
    for (let i = 1; i <= 100; i++) obs.observeCompletion({ ok: true, ttftMs: i, tpotMs: i / 4, inputTokens: 1000 + i, outputTokens: 100 });
    clock.advance(10_000);
    const o = obs.drain();
    expect(o.completions).toBe(100);
    expect(o.arrivals).toBe(0);
    expect(o.ratePerS).toBe(10);
    expect(o.meanIsl).toBe(1050.5);
    expect(o.meanOsl).toBe(100);
    // HDR keeps three significant digits.
    expect(o.ttftMs).toBeCloseTo(90, 1);
    expect(o.tpotMs).toBeCloseTo(22.5, 1);
    expect(o.ttftMeanMs).toBeCloseTo(50.5, 1);
    expect(o.violationRate).toBe(0);
    expect(o.tokensPerS).toBeCloseTo((100 * 1050.5 + 100 * 100) / 10, 9);
    expect(o.startMs).toBe(0);
    expect(o.endMs).toBe(10_000);
  });

  it("counts violations of either target and failures", () => {
    const { clock, obs } = observer();
    obs.observeCompletion({ ok: true, ttftMs: 100, tpotMs: 10 });
    obs.observeCompletion({ ok: true, ttftMs: 400, tpotMs: 10 });
    obs.observeCompletion({ ok: true, ttftMs: 100, tpotMs: 40 });
    obs.observeCompletion({ ok: true, ttftMs: 500, tpotMs: 50 });
    obs.observeCompletion({ ok: false });
    clock.advance(1000);
    const o = obs.drain();
    expect(o).toMatchObject({ completions: 5, violations: 4, ttftViolations: 2, tpotViolations: 2, violationRate: 0.8 });
    expect(o.meanIsl).toBeUndefined();
  });

  it("counts against targets set later (a reload) from then on", () => {
    const { clock, obs } = observer();
    obs.observeCompletion({ ok: true, ttftMs: 100, tpotMs: 10 });
    obs.setTargets({ ttftMs: 50, tpotMs: 5 });
    obs.observeCompletion({ ok: true, ttftMs: 100, tpotMs: 10 });
    obs.observeCompletion({ ok: true, ttftMs: 40, tpotMs: 10 });
    clock.advance(1000);
    expect(obs.drain()).toMatchObject({ completions: 3, violations: 2, ttftViolations: 1, tpotViolations: 2 });
  });

  it("ignores values that are not numbers >= 0", () => {
    const { clock, obs } = observer();
    obs.observeCompletion({ ok: true, ttftMs: NaN, tpotMs: -1, inputTokens: Infinity, outputTokens: 10 });
    clock.advance(1000);
    const o = obs.drain();
    expect(o).toMatchObject({ completions: 1, ttftSamples: 0, tpotSamples: 0, violations: 0, meanOsl: 10 });
    expect(o.ttftMs).toBeUndefined();
    expect(o.meanIsl).toBeUndefined();
  });

  it("takes the rate from arrivals when they are reported, and starts afresh after a drain", () => {
    const { clock, obs } = observer();
    for (let i = 0; i < 30; i++) obs.observeArrival();
    for (let i = 0; i < 10; i++) obs.observeCompletion({ ok: true });
    clock.advance(5000);
    expect(obs.drain()).toMatchObject({ arrivals: 30, completions: 10, ratePerS: 6 });
    clock.advance(5000);
    expect(obs.drain()).toMatchObject({ arrivals: 0, completions: 0, ratePerS: 0, violations: 0, startMs: 5000, endMs: 10_000 });
  });
});

describe("the short arrival window", () => {
  it("is the rate over the last ten seconds, forgetting older arrivals", () => {
    const { clock, obs } = observer(new ManualClock(100_000));
    // 5 per second for 20 s, then 40 per second for 2 s.
    for (let s = 0; s < 20; s++) {
      for (let i = 0; i < 5; i++) obs.observeArrival();
      clock.advance(1000);
    }
    expect(obs.shortWindow().ratePerS).toBeCloseTo(5, 9);
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < 40; i++) obs.observeArrival();
      clock.advance(1000);
    }
    // On a bucket boundary the window is the nine whole seconds before it.
    expect(obs.shortWindow()).toMatchObject({ arrivals: 7 * 5 + 2 * 40, windowMs: 9000 });
    clock.advance(500);
    expect(obs.shortWindow()).toMatchObject({ arrivals: 7 * 5 + 2 * 40, windowMs: 9500 });
    clock.advance(60_000);
    expect(obs.shortWindow().arrivals).toBe(0);
  });

  it("covers only the time since the observer started", () => {
    const { clock, obs } = observer(new ManualClock(0));
    for (let i = 0; i < 10; i++) obs.observeArrival();
    clock.advance(2000);
    expect(obs.shortWindow()).toMatchObject({ arrivals: 10, windowMs: 2000, ratePerS: 5 });
  });
});
