// Decisions reach an actuator with bounded retries and backoff on the planners' clock; a decision that
// cannot be applied is reported and kept, and tried again at the next interval. The simulator actuator
// is driven through the interface the simulator implements; an actuator that throws instead of
// rejecting fails an attempt like one that rejects.

import { describe, expect, it } from "vitest";
import { SimulatorActuator, type Actuator, type SimulatedCluster } from "../src/planner/actuators.js";
import { feed, flush, pool, setup } from "./fixtures/planner-pools.js";

/** A simulated cluster that refuses the first `failures` changes. */
class FlakyCluster implements SimulatedCluster {
  readonly applied: { pool: string; workers: { prefill: number; decode: number; both: number; tp: number } }[] = [];
  calls = 0;

  constructor(public failures: number) {}

  apply(pool: string, workers: { prefill: number; decode: number; both: number; tp: number }): void {
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error("simulated cluster is busy");
    }
    this.applied.push({ pool, workers });
  }
}

const medium = pool("medium", { name: "m", maxGpus: 8, planner: { loadPredictor: "constant", burstProtection: false } });

describe("applying decisions", () => {
  it("retries with exponential backoff on the clock until the actuator succeeds", async () => {
    const cluster = new FlakyCluster(2);
    const t = setup([medium], { actuator: new SimulatorActuator(cluster), apply: { attempts: 4, initialBackoffMs: 1000 } });
    feed(t, { m: { ratePerS: 30 } }, 10);
    await flush();
    expect(cluster.calls).toBe(1);
    expect(t.state("m").apply).toMatchObject({ status: "applying", attempts: 1, failures: 1, lastError: "simulated cluster is busy" });
    t.clock.advance(999);
    await flush();
    expect(cluster.calls).toBe(1);
    t.clock.advance(1);
    await flush();
    expect(cluster.calls).toBe(2);
    // The second retry waits twice as long.
    t.clock.advance(1999);
    await flush();
    expect(cluster.calls).toBe(2);
    t.clock.advance(1);
    await flush();
    const s = t.state("m");
    expect(s.apply).toMatchObject({ status: "applied", attempts: 3, failures: 2, lastError: null, appliedAtMs: 13_000 });
    expect(cluster.applied).toEqual([{ pool: "m", workers: { prefill: 2, decode: 0, both: 1, tp: 1 } }]);
    expect(s.applied).toEqual({ prefill: 2, decode: 0, both: 1, gpus: 3 });
    const failures = await t.registry.getSingleMetricAsString("headroom_planner_actuator_failures_total");
    expect(failures).toContain('headroom_planner_actuator_failures_total{pool="m",actuator="simulator"} 2');
    // One warning for the cause, not one per attempt.
    expect(t.logger.lines.filter((l) => l.message.startsWith("planner decision could not be applied"))).toHaveLength(1);
    t.planners.close();
  });

  it("keeps a decision it cannot apply, reports it and tries again at the next interval", async () => {
    const cluster = new FlakyCluster(Infinity);
    const t = setup([medium], { actuator: new SimulatorActuator(cluster), apply: { attempts: 2, initialBackoffMs: 1000 } });
    feed(t, { m: { ratePerS: 30 } }, 10);
    await flush();
    t.clock.advance(1000);
    await flush();
    let s = t.state("m");
    expect(s.apply).toMatchObject({ status: "failed", attempts: 2, failures: 2 });
    expect(s.desired).toEqual({ prefill: 2, decode: 0, both: 1, gpus: 3 });
    expect(s.applied).toEqual({ prefill: 0, decode: 0, both: 1, gpus: 1 });
    expect(t.logger.lines.some((l) => l.level === "error" && l.message.startsWith("planner decision failed"))).toBe(true);
    // The cluster recovers; the next interval (same load, same decision) tries the decision again.
    cluster.failures = 0;
    feed(t, { m: { ratePerS: 30 } }, 9);
    await flush();
    expect(cluster.calls).toBe(3);
    s = t.state("m");
    expect(s.decisions).toHaveLength(1);
    expect(s.apply).toMatchObject({ status: "applied", attempts: 1, failures: 2 });
    expect(s.applied).toEqual({ prefill: 2, decode: 0, both: 1, gpus: 3 });
    t.planners.close();
  });

  it("tries a failed decision again at the next interval even when that interval is not sized (bad utilization)", async () => {
    const cluster = new FlakyCluster(Infinity);
    let healthy = true;
    const t = setup([medium], {
      actuator: new SimulatorActuator(cluster),
      apply: { attempts: 2, initialBackoffMs: 1000 },
      utilization: () => (healthy ? { prefillQueueUtil: 0.1, kvUtil: 0.1 } : { prefillQueueUtil: NaN, kvUtil: 0.1 }),
    });
    feed(t, { m: { ratePerS: 30 } }, 10);
    await flush();
    t.clock.advance(1000);
    await flush();
    expect(t.state("m").apply).toMatchObject({ status: "failed", attempts: 2 });
    // The pool's utilization is not a number for a while, and the actuator recovers meanwhile.
    healthy = false;
    cluster.failures = 0;
    feed(t, { m: { ratePerS: 30 } }, 9);
    await flush();
    const s = t.state("m");
    expect(s.lastSkip?.cause).toBe("utilization_invalid");
    expect(s.apply).toMatchObject({ status: "applied" });
    expect(s.applied).toEqual({ prefill: 2, decode: 0, both: 1, gpus: 3 });
    t.planners.close();
  });

  it("counts an actuator that throws instead of rejecting as a failed attempt, and retries it", async () => {
    const received: number[] = [];
    let refusals = 1;
    const own: Actuator = {
      kind: "own",
      apply(request) {
        if (refusals-- > 0) throw new Error("refused at once");
        received.push(request.prefill);
        return Promise.resolve();
      },
    };
    const t = setup([medium], { actuator: own, apply: { attempts: 4, initialBackoffMs: 1000 } });
    feed(t, { m: { ratePerS: 30 } }, 10);
    await flush();
    let s = t.state("m");
    expect(s.lastSkip).toBeNull();
    expect(s.apply).toMatchObject({ status: "applying", attempts: 1, failures: 1, lastError: "refused at once" });
    // Before, the throw left submit() with the applier marked running, and no attempt ever ran again.
    t.clock.advance(1000);
    await flush();
    s = t.state("m");
    expect(received).toEqual([2]);
    expect(s.apply).toMatchObject({ status: "applied", attempts: 2 });
    expect(s.applied).toEqual({ prefill: 2, decode: 0, both: 1, gpus: 3 });
    t.planners.close();
  });

  it("applies the newest decision when decisions come faster than the actuator", async () => {
    let release: () => void = () => {};
    const seen: number[] = [];
    const slow: SimulatedCluster = {
      apply: (_pool, w) => {
        seen.push(w.prefill);
        return new Promise<void>((resolve) => (release = resolve));
      },
    };
    const t = setup([pool("medium", { name: "m", maxGpus: 8, planner: { loadPredictor: "constant", burstProtection: false } })], {
      actuator: new SimulatorActuator(slow),
    });
    feed(t, { m: { ratePerS: 30 } }, 10); // 2 prefill workers
    feed(t, { m: { ratePerS: 50 } }, 10); // 4 prefill workers: 100,000 / (38,870 x 0.85) = 3.03
    feed(t, { m: { ratePerS: 70 } }, 10); // 5
    expect(seen).toEqual([2]);
    release();
    await flush();
    expect(seen).toEqual([2, 5]);
    release();
    await flush();
    expect(t.state("m").applied.prefill).toBe(5);
    t.planners.close();
  });
});
