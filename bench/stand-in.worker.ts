// Runs the latency-predictor stand-in in its own thread, so a benchmark's main-thread time counts only
// headroom's work. Posts {url} once listening; answers "totals" with its call and row counts.

import { parentPort } from "node:worker_threads";
import { LatencyPredictorStandIn } from "./latency-predictor-service.js";

const service = await LatencyPredictorStandIn.start();
parentPort!.postMessage({ url: service.url });
parentPort!.on("message", (msg: string) => {
  if (msg === "totals") parentPort!.postMessage({ predictCalls: service.predictCalls, predictRows: service.predictRows });
  if (msg === "close") void service.close().then(() => process.exit(0));
});
