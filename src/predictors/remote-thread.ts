// The remote predictor's own thread: builds the rows, talks HTTP to the latency-predictor service and
// parses its answers away from the main thread, which only posts pod features and receives curves.
// Messages: refresh / train / close in; refreshed (values, answered calls, counters) / log out (see
// remote-threaded.ts).

import { parentPort, workerData } from "node:worker_threads";
import { Registry } from "prom-client";
import { realClock } from "../clock.js";
import type { Logger } from "../log.js";
import { ProfilePredictor } from "./profile.js";
import { RemotePredictor, type RemoteEndpointsByQuantity, type RemotePredictorOptions } from "./remote.js";
import type { PodFeatures, Quantity } from "./types.js";

export type ToRemoteThread =
  | { t: "refresh"; id: number; pods: PodFeatures[]; grid: Float64Array }
  | { t: "train"; quantity: Quantity; features: PodFeatures; inputTokens: number; actual: { ttftMs?: number; tpotMs?: number }; timestampMs: number }
  | { t: "close" };

export type FromRemoteThread =
  | { t: "refreshed"; id: number; latest: ReturnType<RemotePredictor["latestOf"]>; metrics: unknown }
  | { t: "log"; level: "debug" | "info" | "warn" | "error"; message: string; fields?: Record<string, unknown> };

const { endpoints, options } = workerData as { endpoints: RemoteEndpointsByQuantity; options: RemotePredictorOptions };
const port = parentPort!;
const registry = new Registry();
const logger: Logger = { log: (level, message, fields) => port.postMessage({ t: "log", level, message, fields } satisfies FromRemoteThread) };
const remote = new RemotePredictor({
  endpoints,
  // fill() runs on the main thread; this thread never fills, so its fallback holds no profiles.
  fallback: new ProfilePredictor({ profiles: new Map(), tpEfficiency: 1 }),
  options,
  clock: realClock,
  registry,
  logger,
  // The main thread stamps the values with its clock, so it judges whether each answer came in time.
  judge: "caller",
});

port.on("message", (msg: ToRemoteThread) => {
  if (msg.t === "refresh") {
    const refreshed = remote.refresh(msg.pods, msg.grid);
    // This refresh's number, taken before anything is awaited: pools refresh back to back, and the
    // count when this one ends may be a later pool's, whose values are not this pool's.
    const refresh = remote.refreshCount;
    void refreshed.then(async () => {
      const latest = remote.latestOf(refresh);
      port.postMessage({ t: "refreshed", id: msg.id, latest, metrics: await registry.getMetricsAsJSON() } satisfies FromRemoteThread);
    });
  } else if (msg.t === "train") {
    remote.addTrainingSample(msg.quantity, msg.features, msg.inputTokens, msg.actual, msg.timestampMs);
  } else {
    remote.close();
    port.close();
  }
});
