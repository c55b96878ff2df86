// Hostile or broken input never stops the planners: huge latencies in completion reports, huge token
// counts, and an error inside an interval or a burst check (they run on timers, where an error would
// end the process) are logged, planning goes on, and no decision is recorded without reaching the
// actuator.

import { describe, expect, it } from "vitest";
import { jsonLogger } from "../src/log.js";
import type { Actuator } from "../src/planner/actuators.js";
import { MAX_RECORDED_LATENCY_MS } from "../src/planner/observations.js";
import type { Layout, ScaleRequest } from "../src/planner/types.js";
import { feed, pool, setup } from "./fixtures/planner-pools.js";

const medium = pool("medium", { name: "m", maxGpus: 8, planner: { loadPredictor: "constant", burstProtection: false } });

/** A JSON logger whose output fails on lines that contain `failOn` (a closed stderr: EPIPE), keeping the others. */
function brittleLogger(failOn: string) {
  const lines: Record<string, unknown>[] = [];
  let failing = true;
  const logger = jsonLogger({
    write(text: string) {
      if (failing && text.includes(failOn)) throw new Error("write EPIPE");
      lines.push(JSON.parse(text) as Record<string, unknown>);
      return true;
    },
  });
  return { logger, lines, heal: () => (failing = false) };
}

/** An actuator that cannot read what runs (as the webhook one), keeping every request it is given. */
function recordingActuator() {
  const received: ScaleRequest[] = [];
  const actuator: Actuator = { kind: "webhook", apply: async (r) => void received.push(r) };
  return { actuator, received };
}

const layoutOf = (r: ScaleRequest): Layout => ({ prefill: r.prefill, decode: r.decode, both: r.both });

describe("huge latencies in completion reports", () => {
  it("are recorded as one hour, counted, and logged once; the interval is sized", () => {
    const t = setup([medium]);
    for (const ttftMs of [1e13, 1e20, Number.MAX_VALUE]) t.planners.observeCompletion("m", { ok: true, ttftMs, tpotMs: 20 });
    t.planners.observeCompletion("m", { ok: true, ttftMs: 100, tpotMs: 1e15 });
    feed(t, { m: { ratePerS: 30 } }, 10);
    const s = t.state("m");
    expect(s.lastTickMs).toBe(10_000);
    expect(s.observation).toMatchObject({ clampedLatencies: 4, ttftViolations: 3, tpotViolations: 1 });
    expect(s.observation!.ttftMeanMs).toBeGreaterThan(0);
    expect(s.observation!.tpotMeanMs).toBeLessThanOrEqual(MAX_RECORDED_LATENCY_MS * 1.001);
    expect(s.lastSkip).toBeNull();
    expect(s.desired.prefill).toBe(2);
    // Another interval with one more: no second warning, and the observer started afresh.
    t.planners.observeCompletion("m", { ok: true, ttftMs: 1e14, tpotMs: 20 });
    feed(t, { m: { ratePerS: 30 } }, 10);
    expect(t.state("m").observation).toMatchObject({ clampedLatencies: 1, completions: 301 });
    expect(t.logger.lines.filter((l) => l.message.includes("over an hour were counted as one hour"))).toHaveLength(1);
    t.planners.close();
  });
});

describe("huge token counts in completion reports", () => {
  it("size the pool to its cap without holding the thread", () => {
    const t = setup([pool("medium", { name: "m", planner: { loadPredictor: "constant", burstProtection: false } })]);
    // 100 req/s of 10-million-token prompts and answers: hundreds of millions of workers' worth.
    feed(t, { m: { ratePerS: 100, isl: 1e7, osl: 1e7 } }, 10);
    const s = t.state("m");
    expect(s.sizing!.decodeWorkers).toBeGreaterThan(1e8);
    expect(s.desired).toMatchObject({ gpus: 3 });
    expect(s.maxWorkers).toBe(3);
    t.planners.close();
  });
});

describe("an error inside an interval", () => {
  it("is logged and counted as a skipped interval; a decision made before it reached the actuator", async () => {
    const { logger, lines, heal } = brittleLogger('"msg":"planner decision"');
    const { actuator, received } = recordingActuator();
    const t = setup([medium], { logger, actuator });
    // The decision's log line fails: before, the error left the timer (an uncaught exception).
    feed(t, { m: { ratePerS: 30 } }, 10);
    let s = t.state("m");
    expect(s.lastSkip).toMatchObject({ atMs: 10_000, cause: "error", message: "the interval failed: write EPIPE" });
    expect(lines.filter((l) => l.msg === "planner skipped sizing for this interval; the pool keeps its workers")).toHaveLength(1);
    expect(await t.registry.getSingleMetricAsString("headroom_planner_skipped_intervals_total")).toContain(
      'headroom_planner_skipped_intervals_total{pool="m",cause="error"} 1',
    );
    // The decision was handed over before the line that failed. Before, the planner held it as
    // desired and never submitted it, so no later interval found anything to change.
    expect(received.map(layoutOf)).toEqual([{ prefill: 2, decode: 0, both: 1 }]);
    heal();
    feed(t, { m: { ratePerS: 30 } }, 10);
    await t.planners.settled();
    s = t.state("m");
    expect(s.lastTickMs).toBe(20_000);
    expect(s.observation).toMatchObject({ startMs: 10_000, completions: 300 });
    expect(s.desired.prefill).toBe(2);
    expect(s.apply.status).toBe("applied");
    expect(s.applied).toMatchObject({ prefill: 2, decode: 0, both: 1 });
    expect(received).toHaveLength(1);
    t.planners.close();
  });

  it("in a burst check is logged once, later checks still run, and every decision reaches the actuator", async () => {
    const { logger, lines, heal } = brittleLogger('"msg":"planner decision"');
    const { actuator, received } = recordingActuator();
    const guarded = pool("medium", { name: "m", maxGpus: 8, planner: { loadPredictor: "constant", burstProtection: true, adjustmentIntervalMs: 30_000 } });
    const t = setup([guarded], { logger, actuator });
    feed(t, { m: { ratePerS: 40 } }, 5);
    expect(lines.filter((l) => l.msg === "planner burst check failed")).toHaveLength(1);
    heal();
    feed(t, { m: { ratePerS: 40 } }, 2);
    await t.planners.settled();
    const s = t.state("m");
    expect(s.decisions.length).toBeGreaterThan(0);
    expect(s.decisions.every((d) => d.reason === "burst")).toBe(true);
    // Newest first in the state, in order at the actuator: the one whose log line failed included.
    expect(received.map(layoutOf)).toEqual(s.decisions.map((d) => d.to).reverse());
    expect(s.applied).toMatchObject(s.decisions[0]!.to);
    t.planners.close();
  });

  it.each([
    ["an interval", false],
    ["a burst check", true],
  ])("in %s cannot escape its timer when the logger itself fails (a closed stderr)", async (_, burstProtection) => {
    const { actuator, received } = recordingActuator();
    let closed = false;
    const logger = jsonLogger({
      write() {
        if (closed) throw new Error("write EPIPE");
        return true;
      },
    });
    const t = setup([pool("medium", { name: "m", maxGpus: 8, planner: { loadPredictor: "constant", burstProtection } })], { logger, actuator });
    closed = true;
    // Before, the catch logged the error through the same logger, and that second throw left the timer.
    expect(() => feed(t, { m: { ratePerS: 30 } }, 20)).not.toThrow();
    await t.planners.settled();
    const s = t.state("m");
    expect(s.lastTickMs).toBe(20_000);
    expect(s.decisions.length).toBeGreaterThan(0);
    expect(received.map(layoutOf)).toEqual(s.decisions.map((d) => d.to).reverse());
    t.planners.close();
  });
});
