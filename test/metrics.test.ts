// Tallied counters (src/metrics.ts): counts kept as plain numbers reach the Prometheus counter at
// collection, summed over every tally on it, and a closed tally's counts are kept.

import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { collectTallies, CounterTally } from "../src/metrics.js";

function setup() {
  const registry = new Registry();
  const counter = new Counter({ name: "t_total", help: "t", labelNames: ["kind"], registers: [registry], collect: collectTallies });
  const values = async () => Object.fromEntries((await counter.get()).values.map((v) => [v.labels.kind, v.value]));
  return { registry, counter, values };
}

describe("tallied counters", () => {
  it("adds every tally's slots to the counter when it is collected, once", async () => {
    const { counter, registry, values } = setup();
    const a = new CounterTally(counter);
    const b = new CounterTally(counter);
    a.slot({ kind: "x" }).n += 2;
    // Finding a slot again gives the one already counting.
    a.slot({ kind: "x" }).n++;
    b.slot({ kind: "x" }).n += 4;
    b.slot({ kind: "y" }).n++;
    counter.inc({ kind: "y" }, 10);
    expect(await values()).toEqual({ x: 7, y: 11 });
    expect(await values()).toEqual({ x: 7, y: 11 });
    a.slot({ kind: "y" }).n++;
    expect(await registry.metrics()).toContain('t_total{kind="y"} 12');
  });

  it("keeps a closed tally's counts and counts nothing of it afterwards", async () => {
    const { counter, values } = setup();
    const tally = new CounterTally(counter);
    const slot = tally.slot({ kind: "x" });
    slot.n = 3;
    tally.close();
    slot.n = 5;
    expect(await values()).toEqual({ x: 3 });
  });
});
