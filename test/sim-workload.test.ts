// Workloads and scenarios: arrival processes keep their mean rate (gamma with its coefficient of
// variation), lengths stay within their cuts, the SLO mix maps levels to the default pools' targets,
// the CSV trace reader (and its refusal of a trace without a time span), and the rate grid from 20 %
// to 150 % of the nominal capacity.

import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.js";
import { loadProfiles, nominalCapacity, rateGrid } from "../src/sim/capacity.js";
import { Rng } from "../src/sim/random.js";
import { parseScenario } from "../src/sim/scenario.js";
import { arrivalGaps, generateWorkload, parseTrace, readTrace, traceRateRps } from "../src/sim/workload.js";
import { benchScenario, tinyScenario } from "./fixtures/sim-scenario.js";

function cv(xs: number[]): { mean: number; cv: number } {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
  return { mean, cv: Math.sqrt(variance) / mean };
}

describe("workloads", () => {
  it("draws Poisson and gamma inter-arrival times with the rate's mean and the asked-for variation", () => {
    for (const [process, expectedCv] of [[{ process: "poisson" } as const, 1], [{ process: "gamma", cv: 3 } as const, 3]] as const) {
      const gap = arrivalGaps(process, 50, new Rng(11));
      const gaps = Array.from({ length: 200_000 }, gap);
      const stats = cv(gaps);
      expect(stats.mean).toBeGreaterThan(20 * 0.97);
      expect(stats.mean).toBeLessThan(20 * 1.03);
      expect(stats.cv).toBeGreaterThan(expectedCv * 0.93);
      expect(stats.cv).toBeLessThan(expectedCv * 1.07);
    }
  });

  it("keeps lengths within their cuts and gives each level its default pool's targets", () => {
    const scenario = benchScenario("default", { durationMs: 200_000 });
    const requests = generateWorkload(scenario, 40);
    expect(requests.length).toBeGreaterThan(7600);
    const isl = requests.map((r) => r.inputTokens).sort((a, b) => a - b);
    const osl = requests.map((r) => r.outputTokens).sort((a, b) => a - b);
    expect(isl[0]).toBeGreaterThanOrEqual(1);
    expect(isl[isl.length - 1]).toBeLessThanOrEqual(16_384);
    expect(osl[osl.length - 1]).toBeLessThanOrEqual(2048);
    expect(Math.abs(isl[isl.length >> 1] - 1024) / 1024).toBeLessThan(0.05);
    expect(Math.abs(osl[osl.length >> 1] - 256) / 256).toBeLessThan(0.05);
    const share = (level: string) => requests.filter((r) => r.sloLevel === level).length / requests.length;
    expect(Math.abs(share("high") - 0.3)).toBeLessThan(0.02);
    expect(Math.abs(share("medium") - 0.5)).toBeLessThan(0.02);
    const targets = (level: string) => requests.find((r) => r.sloLevel === level)!;
    expect(targets("high")).toMatchObject({ sloTtftMs: 300, sloTpotMs: 30 });
    expect(targets("medium")).toMatchObject({ sloTtftMs: 600, sloTpotMs: 50 });
    expect(targets("low")).toMatchObject({ sloTtftMs: 2000, sloTpotMs: 100 });
  });

  it("keeps the n-th request's lengths and class when only the rate changes", () => {
    const scenario = tinyScenario();
    const slow = generateWorkload(scenario, 10);
    const fast = generateWorkload(scenario, 40);
    expect(fast.length).toBeGreaterThan(slow.length);
    for (let i = 0; i < slow.length; i++) {
      expect(fast[i]).toMatchObject({ inputTokens: slow[i].inputTokens, outputTokens: slow[i].outputTokens, sloLevel: slow[i].sloLevel, seed: slow[i].seed });
    }
  });

  it("reads a CSV trace and replays it scaled to the offered rate, levels from the trace or the mix", () => {
    const rows = readTrace(new URL("./fixtures/sim-trace.csv", import.meta.url).pathname);
    expect(rows).toHaveLength(6);
    expect(rows[1]).toEqual({ arrivalMs: 250, inputTokens: 2048, outputTokens: 64, sloLevel: "high" });
    expect(traceRateRps(rows)).toBeCloseTo(5 / 1.25, 9);
    const scenario = tinyScenario({ workload: { arrivals: { process: "trace", file: "sim-trace.csv" } } });
    const replay = generateWorkload(scenario, 8, rows);
    expect(replay.map((r) => r.arrivalMs)).toEqual([0, 125, 250, 375, 500, 625]);
    expect(replay[1]).toMatchObject({ inputTokens: 2048, outputTokens: 64, sloLevel: "high", sloTtftMs: 300 });
    expect(["high", "medium", "low"]).toContain(replay[2].sloLevel);
    expect(() => parseTrace("arrivalMs,inputTokens,outputTokens\n10,5,5\n5,5,5\n")).toThrow(/back in time/);
    expect(() => parseTrace("arrivalMs,inputTokens\n0,5\n1,5\n")).toThrow(ConfigError);
  });

  it("refuses a trace whose rows all share one arrival time, naming it: it has no rate to scale", () => {
    const text = "arrivalMs,inputTokens,outputTokens\n100,100,4\n100,200,4\n";
    expect(() => parseTrace(text, "traces/flat.csv")).toThrow(ConfigError);
    expect(() => parseTrace(text, "traces/flat.csv")).toThrow(/traces\/flat\.csv: every row arrives at 100 ms/);
    // Rows may still share a time when the trace spans some.
    expect(parseTrace("arrivalMs,inputTokens,outputTokens\n100,100,4\n100,200,4\n300,5,5\n", "ok.csv")).toHaveLength(3);
    expect(() => traceRateRps([{ arrivalMs: 5, inputTokens: 1, outputTokens: 1 }, { arrivalMs: 5, inputTokens: 1, outputTokens: 1 }])).toThrow(RangeError);
  });

  it("sweeps 20 % to 150 % of the nominal capacity in steps of 10 %", () => {
    const scenario = benchScenario("default");
    const capacity = nominalCapacity(scenario, loadProfiles(scenario));
    expect(capacity.nominalRps).toBe(Math.min(capacity.prefillRps, capacity.decodeRps));
    const grid = rateGrid(scenario, capacity);
    expect(grid.map((g) => g.fraction)).toEqual([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.3, 1.4, 1.5]);
    expect(grid[8].rateRps).toBeCloseTo(capacity.nominalRps, 1);
    const mismatch = benchScenario("mismatch");
    const slower = nominalCapacity(mismatch, loadProfiles(mismatch));
    // Two of four prefill pods at 1/1.6 of the speed: (2 + 2 / 1.6) / 4 of default's prefill capacity.
    expect(slower.prefillRps).toBeCloseTo((capacity.prefillRps * (2 + 2 / 1.6)) / 4, 6);
  });

  it("rejects scenarios with problems, one line each", () => {
    expect(() => parseScenario("name: x\n")).toThrow(ConfigError);
    const bad = () =>
      tinyScenario({ warmupMs: 20_000, workload: { sloMix: [{ level: "gold", share: 1 }] }, cluster: { pods: [{ name: "p", count: 1, role: "prefill" }] } });
    try {
      bad();
      expect.unreachable();
    } catch (err) {
      const problems = (err as ConfigError).problems.join("\n");
      expect(problems).toMatch(/warmupMs must be < durationMs/);
      expect(problems).toMatch(/level gold is not a default pool/);
      expect(problems).toMatch(/needs a decode pod/);
    }
  });
});
