// The ARIMA pieces that run without the search thread: reading the library's summary, the one-step
// recursion the main thread forecasts with, and the choice among fitted candidates.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { arimaForecast, chooseModel, oneStepMse, parseArimaSummary, parseOrder, RANDOM_WALK, rootsOutsideUnitCircle, type ArimaModel } from "../src/planner/arima.js";

const SUMMARY = readFileSync(new URL("./fixtures/planner-arima-summary.txt", import.meta.url), "utf8");

describe("the library's summary", () => {
  it("gives the order and coefficients of a fit", () => {
    expect(parseArimaSummary(SUMMARY)).toEqual({ p: 1, d: 0, q: 1, phi: [0.249824], theta: [-0.270269], mean: 51.6295 });
    expect(parseOrder(SUMMARY)).toEqual([1, 0, 1]);
  });

  it("is refused for seasonal models, trend terms and coefficients that are not numbers", () => {
    expect(parseArimaSummary(SUMMARY.replace("* (0, 0, 0)", "* (1, 0, 0)"))).toBeNull();
    expect(parseArimaSummary(SUMMARY.replace("MA1              -0.270269", "MA1              -nan"))).toBeNull();
    // auto-ARIMA's drift: the order is still read, the model is not.
    const drift = SUMMARY.replace("( 1, 0, 1)", "( 0, 1, 0)").replace(/AR1.*\n|MA1.*\n/g, "").replace("MEAN             51.6295", "MEAN 0\nTREND            5");
    expect(parseOrder(drift)).toEqual([0, 1, 0]);
    expect(parseArimaSummary(drift)).toBeNull();
    expect(parseArimaSummary("no summary")).toBeNull();
  });
});

describe("the one-step recursion", () => {
  it("forecasts AR(1) around its mean", () => {
    const m: ArimaModel = { p: 1, d: 0, q: 0, phi: [0.5], theta: [], mean: 10 };
    // 10 + 0.5 * (14 - 10)
    expect(arimaForecast([12, 8, 14], m)).toBeCloseTo(12, 12);
  });

  it("rebuilds MA residuals from zero, with the library's sign", () => {
    const m: ArimaModel = { p: 0, d: 0, q: 1, phi: [], theta: [-0.5], mean: 0 };
    // e0 = 2, e1 = 1 - (+0.5 * 2) = 0, e2 = 3 - 0 = 3; forecast = 0 + 0.5 * 3.
    expect(arimaForecast([2, 1, 3], m)).toBeCloseTo(1.5, 12);
  });

  it("integrates differenced models back", () => {
    const m: ArimaModel = { p: 1, d: 1, q: 0, phi: [1], theta: [], mean: 0 };
    // differences 3, 3, 3: the next difference is 3 and the next value 19.
    expect(arimaForecast([7, 10, 13, 16], m)).toBe(19);
    expect(arimaForecast([7, 10, 13, 16], RANDOM_WALK)).toBe(16);
  });

  it("scores a model by its errors on the latest points", () => {
    const series = [1, 2, 3, 4, 5, 6];
    expect(oneStepMse(series, RANDOM_WALK, 3)).toBe(1);
    expect(oneStepMse(series, { p: 1, d: 1, q: 0, phi: [1], theta: [], mean: 0 }, 3)).toBe(0);
  });
});

describe("choosing among fitted candidates", () => {
  // A cycle of period 8 that fades by 1 % a step: an exact, stationary AR(2).
  const ar2: ArimaModel = { p: 2, d: 0, q: 0, phi: [2 * 0.99 * Math.cos((2 * Math.PI) / 8), -(0.99 ** 2)], theta: [], mean: 100 };
  const series = Array.from({ length: 40 }, (_, t) => 100 + 30 * 0.99 ** t * Math.sin((2 * Math.PI * t) / 8));

  it("keeps the candidate with the smallest one-step error when it beats the random walk", () => {
    const choice = chooseModel(series, [{ model: ar2, libraryForecast: arimaForecast(series, ar2) }], 10);
    expect(choice.model).toBe(ar2);
    expect(choice.mse).toBeLessThan(1e-9);
    expect(choice.randomWalkMse).toBeGreaterThan(100);
  });

  it("rejects a candidate whose recursion disagrees with the library's forecast", () => {
    const choice = chooseModel(series, [{ model: ar2, libraryForecast: arimaForecast(series, ar2) + 50 }], 10);
    expect(choice.rejected).toBe(1);
    expect(choice.model).toBe(RANDOM_WALK);
  });

  it("falls back to the random walk when nothing beats it", () => {
    const walk = [5, 6, 7, 6, 5, 6, 7, 8, 9, 8, 7, 8, 9, 10];
    const flat: ArimaModel = { p: 1, d: 0, q: 0, phi: [0], theta: [], mean: 0 };
    expect(chooseModel(walk, [{ model: flat, libraryForecast: 0 }], 8).model).toBe(RANDOM_WALK);
  });
});

describe("stationary and invertible models only", () => {
  it("tells stationary AR and invertible MA coefficients from the others", () => {
    expect(rootsOutsideUnitCircle([])).toBe(true);
    expect(rootsOutsideUnitCircle([0.5])).toBe(true);
    expect(rootsOutsideUnitCircle([-0.99])).toBe(true);
    expect(rootsOutsideUnitCircle([1])).toBe(false);
    expect(rootsOutsideUnitCircle([-1.2])).toBe(false);
    // AR(2) is stationary inside the triangle |phi2| < 1, phi1 + phi2 < 1, phi2 - phi1 < 1.
    expect(rootsOutsideUnitCircle([2 * Math.cos((2 * Math.PI) / 8) * 0.95, -0.95 * 0.95])).toBe(true);
    expect(rootsOutsideUnitCircle([0.6, 0.5])).toBe(false);
    expect(rootsOutsideUnitCircle([-0.6, 0.5])).toBe(false);
    expect(rootsOutsideUnitCircle([0.2, -1])).toBe(false);
    // 1 - 0.5z - 0.3z^2 - 0.1z^3 = 0 has a root at z = 1.09; 1 - 0.5z - 0.3z^2 - 0.3z^3 one at 0.93.
    expect(rootsOutsideUnitCircle([0.5, 0.3, 0.1])).toBe(true);
    expect(rootsOutsideUnitCircle([0.5, 0.3, 0.3])).toBe(false);
    expect(rootsOutsideUnitCircle([NaN])).toBe(false);
  });

  it("refuses an explosive fit that wins in sample after a level shift", () => {
    // About 20 req/s for 39 intervals, then 100: the library fitted this AR(2), whose one-step error over
    // the last 30 points beats the last value's, and whose forecasts as 100s keep coming are -582, -427…
    const series = [
      19.62, 20.69, 20.97, 20.47, 20.92, 19.59, 20.32, 19.31, 20.99, 20.22, 20.45, 19.59, 20.32, 20.54, 19.96, 20.27, 20.35, 19.43, 20.73, 20.96,
      20.68, 19.03, 19.85, 19.73, 20.69, 19.54, 19.98, 20.14, 19.9, 19.91, 20.36, 20.73, 19.18, 20.38, 20.14, 20.1, 19.54, 20.66, 19.03, 100,
    ];
    const explosive: ArimaModel = { p: 2, d: 0, q: 0, phi: [-7.54365, 1.91639], theta: [], mean: 20.46 };
    expect(oneStepMse(series, explosive, 30)).toBeLessThan(oneStepMse(series, RANDOM_WALK, 30));
    expect(arimaForecast([...series, 100], explosive)).toBeLessThan(0);
    const choice = chooseModel(series, [{ model: explosive, libraryForecast: arimaForecast(series, explosive) }], 30);
    expect(choice.model).toBe(RANDOM_WALK);
    expect(choice.rejected).toBe(1);
  });

  it("refuses a non-invertible MA fit", () => {
    const r = (t: number) => Math.sin(t * 12.9898) * 0.5;
    const series = Array.from({ length: 40 }, (_, t) => 50 + r(t));
    const nonInvertible: ArimaModel = { p: 0, d: 0, q: 1, phi: [], theta: [-1.5], mean: 50 };
    const choice = chooseModel(series, [{ model: nonInvertible, libraryForecast: arimaForecast(series, nonInvertible) }], 30);
    expect(choice).toMatchObject({ model: RANDOM_WALK, rejected: 1 });
  });
});
