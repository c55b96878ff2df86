// headroom against random on the `default` cluster, shortened: the real engine pieces (Cluster,
// snapshots, the WebAssembly kernel, in-flight accounting) in virtual time, fixed seeds, the same
// requests for both policies. At 80 % of nominal capacity headroom must meet clearly more SLOs.

import { describe, expect, it } from "vitest";
import { loadProfiles, nominalCapacity } from "../src/sim/capacity.js";
import { simulate, summarize } from "../src/sim/run.js";
import { benchScenario } from "./fixtures/sim-scenario.js";

describe("headroom in the simulator", () => {
  it("meets more SLOs than random on the default cluster at 80 % of nominal capacity", () => {
    const scenario = benchScenario("default", { durationMs: 25_000, warmupMs: 5_000 });
    const profiles = loadProfiles(scenario);
    const capacity = nominalCapacity(scenario, profiles);
    const rateRps = 0.8 * capacity.nominalRps;
    const run = (policy: string) => {
      const out = simulate({ scenario, policy, rateRps, profiles, capacity });
      return { ...summarize(out.records, scenario.warmupMs), stats: out.policyStats };
    };
    const headroom = run("headroom");
    const random = run("random");
    expect(headroom.requests).toBe(random.requests);
    expect(headroom.requests).toBeGreaterThan(1500);
    expect(headroom.attainment).toBeGreaterThan(random.attainment + 0.1);
    expect(headroom.ttftP90Ms).toBeLessThan(random.ttftP90Ms);
    // Every pick went through the kernel, mostly to pairs predicted to meet their SLO.
    expect(headroom.stats.positive_headroom).toBeGreaterThan(0.8 * headroom.requests);
  });
});
