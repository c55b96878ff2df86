// Every decoder that takes input from outside the process, fuzzed with fast-check (bench/fuzz-targets.ts):
// a few hundred inputs each here, 100,000 each in `npm run fuzz`. Nothing crashes, every rejection
// carries a code its entry point documents, and the inputs reach both outcomes (the generators are not
// all rejected at the door).

import { describe, expect, it } from "vitest";
import { FUZZ_TARGETS, fuzz } from "../bench/fuzz-targets.js";

const RUNS = 400;
const SEED = 20251123;

describe("fuzzing (bounded)", () => {
  it.each(FUZZ_TARGETS.map((t) => [t.name, t] as const))("%s: no crash, only documented rejections, both outcomes reached", (_name, target) => {
    const report = fuzz(target, RUNS, SEED);
    expect(report.counterexample).toBeUndefined();
    expect(report.crashes).toBe(0);
    expect(report.inputs).toBe(RUNS);
    for (const code of Object.keys(report.rejected)) expect(target.codes).toContain(code);
    expect(report.accepted).toBeGreaterThan(0);
    expect(Object.values(report.rejected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it("a target that crashes is reported with its counterexample", () => {
    const broken = { ...FUZZ_TARGETS[0], name: "broken", run: () => { throw new TypeError("boom"); } };
    const report = fuzz(broken, 50, SEED);
    expect(report.crashes).toBe(1);
    expect(report.counterexample).toMatch(/boom/);
  });
});
