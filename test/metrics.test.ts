// Tallies (src/metrics.ts): counts kept as plain numbers reach the Prometheus counter at collection,
// summed over every tally on it, and a closed tally's counts are kept; a tallied histogram exports
// what prom-client's own Histogram exports for the same observations.

import fc from "fast-check";
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { tallied, TalliedHistogram, talliedHistogram } from "../src/metrics.js";

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

describe("tallied histograms", () => {
  const BUCKETS = [25e-6, 1e-3, 0.5, 2];
  /** prom-client's Histogram and a tallied one, each on its own registry, with the same name, labels and buckets. */
  function pair() {
    const theirs = new Registry();
    const ours = new Registry();
    const histogram = new Histogram({ name: "h_seconds", help: "h", labelNames: ["via", "pool"], buckets: BUCKETS, registers: [theirs] });
    const tally = new TalliedHistogram(ours, "h_seconds", "h", ["via", "pool"], BUCKETS);
    return { theirs, ours, histogram, tally };
  }
  // Bounds themselves, around them, zero, negatives and the very large: where a bucket choice can go wrong.
  const value = fc.oneof(fc.constantFrom(0, ...BUCKETS, -1, 1e300), fc.double({ min: -10, max: 10, noNaN: true }));
  const label = fc.constantFrom("pick", "gateway", 'a "quoted"\\ label\n');

  it("exports, as text and as JSON, what prom-client's Histogram exports for any observations, and after a reset", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(label, label, value), { maxLength: 40 }), fc.array(fc.tuple(label, label, value), { maxLength: 10 }), async (before, after) => {
        const { theirs, ours, histogram, tally } = pair();
        const same = async () => {
          expect(await ours.metrics()).toBe(await theirs.metrics());
          expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
        };
        for (const [via, pool, v] of before) {
          histogram.labels(via, pool).observe(v);
          tally.labels(via, pool).observe(v);
        }
        await same();
        theirs.resetMetrics();
        ours.resetMetrics();
        for (const [via, pool, v] of after) {
          histogram.labels(via, pool).observe(v);
          tally.labels(via, pool).observe(v);
        }
        await same();
      }),
      { numRuns: 200 },
    );
  });

  it("is found again under its name by whoever asks for it, and refused where another kind has the name", () => {
    const registry = new Registry();
    const first = talliedHistogram(registry, "h_seconds", "h", ["via"], BUCKETS);
    expect(talliedHistogram(registry, "h_seconds", "h", ["via"], BUCKETS)).toBe(first);
    new Histogram({ name: "p_seconds", help: "p", labelNames: ["via"], buckets: BUCKETS, registers: [registry] });
    expect(() => talliedHistogram(registry, "p_seconds", "p", ["via"], BUCKETS)).toThrow(TypeError);
  });

  it("refuses what prom-client refuses: a value that is not a finite number, the wrong label count, the label le", () => {
    const { tally } = pair();
    const slot = tally.labels("pick", "p");
    expect(() => slot.observe(Number.NaN)).toThrow(TypeError);
    expect(() => slot.observe(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(slot.count).toBe(0);
    expect(() => tally.labels("pick")).toThrow(RangeError);
    expect(() => new TalliedHistogram(new Registry(), "le_seconds", "h", ["le"], BUCKETS)).toThrow(RangeError);
    expect(tally.labels("pick", "p")).toBe(slot);
  });
});
