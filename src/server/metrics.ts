// The server's request metrics on the app's registry: requests by route pattern and status, how long
// a pick takes from its request being complete to its answer being written, and how busy the main
// thread is.

import { performance } from "node:perf_hooks";
import { Counter, type Registry } from "prom-client";
import { registered, tallied, talliedHistogram, type CounterTally, type HistogramSlot } from "../metrics.js";

/** Route patterns (never raw paths, whose values are unbounded) and "unmatched" for 404s. */
export type RouteLabel =
  | "/v1/pick"
  | "/v1/gateway/pick"
  | "/v1/route"
  | "/v1/report"
  | "/v1/pods"
  | "/v1/pods/{address}"
  | "/v1/stream"
  | "/metrics"
  | "/healthz"
  | "/readyz"
  | "/v1/state"
  | "/v1/planner"
  | "/bench/fixed"
  | "unmatched";

/** How a pick arrived: a pick body, a gateway sub-request, or a stream frame (one observation per frame). */
type PickVia = "pick" | "gateway" | "stream";

/** A pick is tens of microseconds on the main thread and milliseconds when batched on a worker. */
export const PICK_SECONDS_BUCKETS = [25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3];

export interface ServerMetrics {
  /** A tally (src/metrics.ts): every pick is a request. */
  requests: CounterTally<"route" | "status">;
  /** A tallied histogram's slot per way in, resolved once. */
  pickSeconds: Record<PickVia, HistogramSlot>;
}

export function serverMetrics(registry: Registry): ServerMetrics {
  const pickSeconds = talliedHistogram(
    registry,
    "headroom_pick_duration_seconds",
    "Seconds from a pick's request (or stream frame) being complete to its answer being written",
    ["via"],
    PICK_SECONDS_BUCKETS,
  );
  mainThreadBusy(registry);
  return {
    requests: tallied(registry, "headroom_http_requests_total", "HTTP requests by route pattern and status (101 for a WebSocket upgrade)", ["route", "status"]),
    pickSeconds: { pick: pickSeconds.labels("pick"), gateway: pickSeconds.labels("gateway"), stream: pickSeconds.labels("stream") },
  };
}

const MAIN_THREAD_BUSY = "headroom_main_thread_busy_seconds_total";

/**
 * The main thread's event loop's time outside its wait for I/O, as a counter (its rate is the share of
 * a core the main thread uses): every socket, decode, inline kernel call and encode runs there, and
 * picks that arrive one at a time queue behind it long before it reaches 1 (README, Limits).
 */
function mainThreadBusy(registry: Registry): void {
  registered(registry, MAIN_THREAD_BUSY, Counter, () => {
    let reportedS = 0;
    return new Counter({
      name: MAIN_THREAD_BUSY,
      help: "Seconds the main thread's event loop spent running rather than waiting for I/O (rate: its share of a core)",
      registers: [registry],
      collect() {
        // `active` is elapsed time minus idle time in floating point: a rounding step back must not throw.
        const busyS = Math.max(reportedS, performance.eventLoopUtilization().active / 1000);
        this.inc(busyS - reportedS);
        reportedS = busyS;
      },
    });
  });
}

export function elapsedSeconds(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}
