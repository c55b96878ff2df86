// Tallied counters (src/metrics.ts): counts kept as plain numbers reach the Prometheus counter at
// collection, summed over every tally on it, and a closed tally's counts are kept.

import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { tallied } from "../src/metrics.js";

function setup() {
  const registry = new Registry();
  const tally = () => tallied(registry, "t_total", "t", ["kind"]);
  const first = tally();
  const counter = registry.getSingleMetric("t_total") as Counter<"kind">;
  const values = async () => Object.fromEntries((await counter.get()).values.map((v) => [v.labels.kind, v.value]));
  return { registry, counter, first, tally, values };
}

describe("tallied counters", () => {
  it("adds every tally's slots to the counter when it is collected, once", async () => {
    const { counter, registry, values, first: a, tally } = setup();
    const b = tally();
    a.slot("x").n += 2;
    // Finding a slot again gives the one already counting.
    a.slot("x").n++;
    b.slot("x").n += 4;
    b.slot("y").n++;
    counter.inc({ kind: "y" }, 10);
    expect(await values()).toEqual({ x: 7, y: 11 });
    expect(await values()).toEqual({ x: 7, y: 11 });
    a.slot("y").n++;
    expect(await registry.metrics()).toContain('t_total{kind="y"} 12');
  });

  it("keeps a closed tally's counts and counts nothing of it afterwards", async () => {
    const { first: tally, values } = setup();
    const slot = tally.slot("x");
    slot.n = 3;
    tally.close();
    slot.n = 5;
    expect(await values()).toEqual({ x: 3 });
  });

  it("finds slots by their label values, in the labels' order, for none, one or two labels", async () => {
    const registry = new Registry();
    const two = tallied(registry, "two_total", "two", ["pool", "outcome"]);
    const none = tallied(registry, "none_total", "none", []);
    two.slot("p", "a").n++;
    two.slot("p", "b").n += 2;
    two.slot("q", "a").n += 3;
    none.slot().n += 4;
    expect(two.slot("p", "b")).toBe(two.slot("p", "b"));
    expect(() => two.slot("p")).toThrow(RangeError);
    expect(() => none.slot("x")).toThrow(RangeError);
    expect(() => tallied(registry, "three_total", "three", ["a", "b", "c"])).toThrow(RangeError);
    const text = await registry.metrics();
    expect(text).toContain('two_total{pool="p",outcome="a"} 1');
    expect(text).toContain('two_total{pool="p",outcome="b"} 2');
    expect(text).toContain('two_total{pool="q",outcome="a"} 3');
    expect(text).toContain("none_total 4");
  });
});
