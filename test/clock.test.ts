// The injectable clock: virtual time runs timers in order and only when advanced; `every` repeats.

import { describe, expect, it } from "vitest";
import { every, ManualClock, PacedClock, realClock } from "../src/clock.js";

describe("ManualClock", () => {
  it("runs timers in due order, ties in scheduling order, and only when time reaches them", () => {
    const clock = new ManualClock(1000);
    const ran: string[] = [];
    clock.schedule(30, () => ran.push(`c@${clock.nowMs()}`));
    clock.schedule(10, () => ran.push(`a@${clock.nowMs()}`));
    clock.schedule(10, () => ran.push(`b@${clock.nowMs()}`));
    clock.advance(9);
    expect(ran).toEqual([]);
    clock.advance(25);
    expect(ran).toEqual(["a@1010", "b@1010", "c@1030"]);
    expect(clock.nowMs()).toBe(1034);
  });

  it("runs a timer scheduled while advancing if it falls due before the end", () => {
    const clock = new ManualClock();
    const ran: number[] = [];
    clock.schedule(5, () => {
      ran.push(clock.nowMs());
      clock.schedule(5, () => ran.push(clock.nowMs()));
    });
    clock.advance(20);
    expect(ran).toEqual([5, 10]);
  });

  it("does not run a cancelled timer and refuses to go back in time", () => {
    const clock = new ManualClock(50);
    let ran = false;
    const cancel = clock.schedule(1, () => (ran = true));
    cancel();
    clock.advance(5);
    expect(ran).toBe(false);
    expect(() => clock.advanceTo(10)).toThrow(RangeError);
    expect(() => clock.advanceTo(NaN)).toThrow(RangeError);
  });

  it("every() repeats each period until cancelled", () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const cancel = every(clock, 100, () => at.push(clock.nowMs()));
    clock.advance(350);
    cancel();
    clock.advance(1000);
    expect(at).toEqual([100, 200, 300]);
  });
});

describe("realClock", () => {
  it("is monotonic and runs a scheduled function", async () => {
    const t0 = realClock.nowMs();
    const ranAt = await new Promise<number>((resolve) => realClock.schedule(5, () => resolve(realClock.nowMs())));
    expect(ranAt).toBeGreaterThan(t0);
  });
});

describe("PacedClock", () => {
  it("chains fractional delays without drift, never firing a timer before its deadline", async () => {
    const clock = new PacedClock();
    const start = clock.nowMs();
    const seen: { inside: number; real: number }[] = [];
    await new Promise<void>((resolve) => {
      const step = () => {
        seen.push({ inside: clock.nowMs(), real: performance.now() });
        if (seen.length < 10) clock.schedule(1.3, step);
        else resolve();
      };
      clock.schedule(1.3, step);
    });
    expect(seen[0].inside).toBeGreaterThanOrEqual(start + 1.3);
    // Inside each callback the time is its deadline: the previous one plus exactly the delay...
    for (let k = 1; k < seen.length; k++) expect(seen[k].inside - seen[k - 1].inside).toBeCloseTo(1.3, 9);
    // ...which real time has reached (the clock reads performance.now() outside callbacks).
    for (const s of seen) expect(s.real).toBeGreaterThanOrEqual(s.inside);
  });

  it("keeps a long chain on its deadlines in real time: each callback's lateness is made up, not added", async () => {
    const clock = new PacedClock();
    const lateness: number[] = [];
    await new Promise<void>((resolve) => {
      const step = () => {
        lateness.push(performance.now() - clock.nowMs());
        if (lateness.length < 120) clock.schedule(1.2, step);
        else resolve();
      };
      clock.schedule(1.2, step);
    });
    // Waiting the whole delay, rounded up to 2 ms, from each late callback put the 100th about 80 ms
    // behind its deadline; made up, lateness stays that of one timer. The median of the last 20 leaves
    // room for a stall of the host.
    const last = lateness.slice(-20).sort((a, b) => a - b);
    expect(last[10]).toBeLessThan(15);
  });

  it("is monotonic across callbacks and plain reads, and a cancelled timer never runs", async () => {
    const clock = new PacedClock();
    let ran = false;
    clock.schedule(2, () => (ran = true))();
    const reads: number[] = [];
    await new Promise<void>((resolve) => clock.schedule(5, () => (reads.push(clock.nowMs()), resolve())));
    reads.push(clock.nowMs());
    expect(reads[1]).toBeGreaterThanOrEqual(reads[0]);
    expect(ran).toBe(false);
  });
});
