// bench:sim's options: only the full sweep writes bench/results/ by default (a quick or narrowed run
// writes elsewhere and says how it was narrowed), and an unknown scenario or policy is refused with
// the known names.

import { describe, expect, it } from "vitest";
import { sweepArgs } from "../bench/sim.js";

const KNOWN = ["burst", "default", "mismatch", "two-racks"];
const RESULTS = "/repo/bench/results";
const temp = () => "/tmp/headroom-sim-x";
const args = (...argv: string[]) => sweepArgs(argv, KNOWN, RESULTS, temp);

describe("bench:sim options", () => {
  it("writes bench/results only for the full sweep; a narrowed run goes to a temp dir or --out and names its options", () => {
    expect(args()).toEqual({ quick: false, scenarios: ["default", "mismatch", "two-racks", "burst"], policies: undefined, outDir: RESULTS, command: "npm run bench:sim" });
    expect(args("--quick")).toMatchObject({ outDir: "/tmp/headroom-sim-x", command: "npm run bench:sim -- --quick" });
    expect(args("--policies", "headroom")).toMatchObject({ outDir: "/tmp/headroom-sim-x", policies: ["headroom"], command: "npm run bench:sim -- --policies headroom" });
    expect(args("--scenarios", "burst,default", "--out", "/tmp/o")).toMatchObject({
      scenarios: ["default", "burst"],
      outDir: "/tmp/o",
      command: "npm run bench:sim -- --scenarios burst,default",
    });
  });

  it("refuses an unknown scenario or policy, listing the known ones", () => {
    expect(() => args("--scenarios", "burst,defualt")).toThrow("unknown scenario defualt (known: burst, default, mismatch, two-racks)");
    expect(() => args("--policies", "headroom,queue_kv")).toThrow(/unknown policy queue_kv \(known: random, round-robin, queue-kv, /);
    expect(() => args("--scenarios")).toThrow("--scenarios needs a value");
  });
});
