// What the planner's ARIMA order search costs the main thread when both share one core (a server
// pinned to a core, or given a CPU limit of one): the search thread fits back to back while the main
// thread's 1 ms interval timer measures how late each tick fires, once with the thread at the lowest
// priority (the default) and once at the process's, alternating. Run it pinned (`taskset -c 0`);
// bench:planner does. JSON lines on stdout, one per round. Args: [--quick].

import { ArimaSearchThread } from "../src/planner/arima-search.js";
import { emit, note, quantile, round } from "./measure.js";

const quick = process.argv.includes("--quick");
const ROUND_MS = quick ? 2_000 : 6_000;
const ROUNDS = quick ? 1 : 2;

/** A noisy cycle of 120 points: the length a planner's series reaches, and costly enough to fit. */
const SERIES = Array.from({ length: 120 }, (_, t) => 10 + 5 * Math.sin(t / 8) + ((t * 7919) % 13) / 13);

interface Lag {
  searches: number;
  ticks: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

async function measure(lowPriority: boolean): Promise<Lag> {
  const thread = new ArimaSearchThread({ lowPriority });
  // One search first: the thread's start and the library's load are not what this measures.
  await thread.search(SERIES, 20);
  let searching = true;
  let searches = 0;
  const loop = (async () => {
    while (searching) if ((await thread.search(SERIES, 20)) !== null) searches++;
  })();
  const lateMs: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lateMs.push(Math.max(0, now - last - 1));
    last = now;
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, ROUND_MS));
  clearInterval(timer);
  searching = false;
  await loop;
  thread.close();
  lateMs.sort((a, b) => a - b);
  const at = (q: number) => round(quantile(lateMs, q), 2);
  return { searches, ticks: lateMs.length, p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999), maxMs: round(lateMs[lateMs.length - 1], 1) };
}

for (let r = 0; r < ROUNDS; r++) {
  for (const lowPriority of [false, true]) {
    const lag = await measure(lowPriority);
    note(`search thread at ${lowPriority ? "the lowest" : "the process's"} priority: ${lag.searches} searches; main-thread timer late by p99 ${lag.p99Ms} ms, p99.9 ${lag.p999Ms} ms`);
    emit({ bench: "planner", case: "search-thread-lag", lowPriority, ...lag });
  }
}
