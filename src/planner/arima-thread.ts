// The ARIMA order search, in its own thread: a fit takes tens of milliseconds, which must never land on
// the main thread (where picks run). The library's auto-ARIMA (stepwise, by AIC) proposes an order;
// that order and a few low ones are fitted, and the one with the smallest one-step error is sent back
// as coefficients for the main thread's cheap forecasts (arima.ts).

import { createRequire } from "node:module";
import { constants } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import type ARIMAConstructor from "arima";
import { setThreadNice } from "../thread-priority.js";
import { CANDIDATE_ORDERS, chooseModel, parseArimaSummary, parseOrder, type ArimaModel, type FittedCandidate, type Order } from "./arima.js";

export interface ArimaThreadData {
  /** Run at the lowest priority (see lowerPriority); the default, and false only to measure the difference. */
  lowPriority: boolean;
}

export interface ArimaSearchRequest {
  id: number;
  series: number[];
  /** One-step errors are compared over this many of the latest points. */
  window: number;
}

export interface ArimaSearchAnswer {
  id: number;
  model: ArimaModel;
  /** The order auto-ARIMA proposed, if its fit succeeded. */
  autoOrder: Order | null;
  mse: number;
  randomWalkMse: number;
  fitted: number;
  rejected: number;
  elapsedMs: number;
}

/**
 * Gives way to the main thread: where the server has one core (pinned, or a CPU limit of one) the
 * scheduler would otherwise share it evenly while a fit runs, holding picks for whole time slices.
 */
function lowerPriority(): void {
  setThreadNice(constants.priority.PRIORITY_LOW);
}
if ((workerData as ArimaThreadData | undefined)?.lowPriority !== false) lowerPriority();

const printed: string[] = [];
// The library reports the fitted order and coefficients only in the summary it prints when verbose,
// through the console.log it binds when it loads: capture it before loading the library.
console.log = (...args: unknown[]) => {
  printed.push(args.map(String).join(" "));
};
const ARIMA = createRequire(import.meta.url)("arima") as typeof ARIMAConstructor;

/** The library's summary text and one-step forecast of one fit, or null when the fit throws. */
function fit(series: number[], options: ConstructorParameters<typeof ARIMAConstructor>[0]): { summary: string; forecast: number } | null {
  printed.length = 0;
  let model: InstanceType<typeof ARIMAConstructor> | undefined;
  try {
    model = new ARIMA({ ...options, verbose: true }).train(series);
    const [forecast] = model.predict(1);
    return { summary: printed.join("\n"), forecast: forecast[0]! };
  } catch {
    return null;
  } finally {
    model?.destroy();
    printed.length = 0;
  }
}

function search(request: ArimaSearchRequest): ArimaSearchAnswer {
  const started = performance.now();
  const { series } = request;
  const auto = fit(series, { auto: true });
  const autoOrder = auto === null ? null : parseOrder(auto.summary);
  const orders: Order[] = autoOrder === null ? [] : [autoOrder];
  for (const o of CANDIDATE_ORDERS) if (!orders.some((x) => x.every((v, i) => v === o[i]))) orders.push(o);
  const candidates: FittedCandidate[] = [];
  for (const [p, d, q] of orders) {
    // Too short for this order: the library needs d + max(p + q, 10) points.
    if (series.length < d + Math.max(p + q, 10) + 1) continue;
    // The auto fit's own forecast is not used: the library's auto path forecasts differenced models
    // without integrating them back; its fixed-order path does.
    const fixed = fit(series, { p, d, q });
    const model = fixed === null ? null : parseArimaSummary(fixed.summary);
    if (fixed !== null && model !== null) candidates.push({ model, libraryForecast: fixed.forecast });
  }
  const choice = chooseModel(series, candidates, request.window);
  return {
    id: request.id,
    model: choice.model,
    autoOrder,
    mse: choice.mse,
    randomWalkMse: choice.randomWalkMse,
    fitted: candidates.length,
    rejected: choice.rejected,
    elapsedMs: performance.now() - started,
  };
}

parentPort?.on("message", (request: ArimaSearchRequest) => {
  parentPort!.postMessage(search(request) satisfies ArimaSearchAnswer);
});
