// The simulator's reports: attainment printed so that a miss never reads as the 90 % target, in the
// Markdown tables and the SVG alike, and a rate that scored no request shown as n/a, outside goodput.

import { describe, expect, it } from "vitest";
import { goodputOf, markdownReport, pct, svgPlot, type ScenarioSweep, type SweepPoint } from "../src/sim/report.js";
import type { RunSummary } from "../src/sim/run.js";

function point(fraction: number, attainment: number): SweepPoint {
  const summary = { attainment, byLevel: { high: attainment }, unfinished: 0, failed: 0 } as unknown as RunSummary;
  return { policy: "p", fraction, rateRps: 100 * fraction, summary };
}

function sweep(points: SweepPoint[]): ScenarioSweep {
  return {
    name: "x",
    description: "x",
    policies: ["p"],
    capacity: { nominalRps: 100, prefillRps: 100, decodeRps: 120, meanInputTokens: 1, meanOutputTokens: 1, pods: [] },
    points,
  };
}

describe("simulator reports", () => {
  it("rounds attainment down to one decimal, so 89.97 % prints 89.9 and never as the goal", () => {
    expect(pct(0.8997)).toBe("89.9");
    expect(pct(0.9)).toBe("90.0");
    expect(pct(0.57)).toBe("57.0");
    expect(pct(1)).toBe("100.0");
    expect(pct(0)).toBe("0.0");
    const s = sweep([point(0.7, 0.95), point(0.8, 0.8997), point(0.9, 0.5)]);
    expect(goodputOf(s, "p").goodputRps).toBe(70);
    const md = markdownReport([s], "x");
    expect(md).toContain("| p | 95.0 | 89.9 | 50.0 | 70.0 |");
    expect(md).not.toContain("| 90.0 |");
    const svg = svgPlot(s);
    expect(svg).toContain("<title>p: 89.9 % at 80.0 req/s</title>");
  });

  it("shows a rate that scored no request as n/a, and leaves it out of goodput and the plot", () => {
    const s = sweep([point(0.7, 0.95), point(0.8, NaN), point(0.9, 0.92), point(1, 0.5)]);
    const g = goodputOf(s, "p");
    expect(g.goodputRps).toBe(90);
    expect(g.crossingRps).toBeCloseTo(90 + (0.02 / 0.42) * 10, 9);
    expect(markdownReport([s], "x")).toContain("| p | 95.0 | n/a | 92.0 | 50.0 | 90.0 |");
    const svg = svgPlot(s);
    expect(svg).not.toContain("NaN");
    expect(svg.match(/<circle /g)).toHaveLength(3);
  });
});
