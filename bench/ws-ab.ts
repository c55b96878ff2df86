// bench:ws-ab — two server configurations under the same WebSocket load, in alternating pairs: WS
// /v1/stream on 64x64 pools (bench/rpc-server.js 64 with each side's flags, bench/ws-load.js), nothing
// pinned, as bench:rpc's pick-ws cases run. On this shared machine the host's speed swings by more
// than most changes, so only pairs run back to back compare, and the order within a pair alternates
// (A first, then B first) so that a drift during a pair favours neither side.
// One JSON line per run (the rate, frame latency, the server's main thread and its busiest other
// thread in % of a core, both on a CPU and runnable but waiting for one, the generator's), then a
// summary: the pairs B won and the median B/A ratio.
// Args: --a "<server flags>" --b "<server flags>" [--pairs N, default 6] [--seconds S, default 8]
// [--in-flight F, default 8] [--all-pools] (frames over the three pools; default: every pick on one).
// Example: npm run bench:ws-ab -- --a "--product-workers --worker-nice 0" --b "--product-workers"

import { availableParallelism } from "node:os";
import { emit, median, note, round } from "./measure.js";
import { startServer, stopServer, threadTimes, wsLoad, type ThreadTimes } from "./rpc-procs.js";
import { benchArgs } from "./args.js";

const { values: args } = benchArgs("bench:ws-ab", {
  a: { type: "string", value: '"<server flags>"', passOn: true },
  b: { type: "string", value: '"<server flags>"', passOn: true },
  pairs: { type: "string", value: "N" },
  seconds: { type: "string", value: "S" },
  "in-flight": { type: "string", value: "F" },
  "all-pools": { type: "boolean" },
});

function arg(name: "--a" | "--b" | "--pairs" | "--seconds" | "--in-flight", fallback?: string): string {
  const value = args[name.slice(2) as "a" | "b" | "pairs" | "seconds" | "in-flight"] ?? fallback;
  if (value === undefined) {
    process.stderr.write(`bench:ws-ab needs ${name} "<bench/rpc-server.js flags>" (see bench/ws-ab.ts)\n`);
    process.exit(2);
  }
  return value;
}

function count(name: "--pairs" | "--seconds" | "--in-flight", fallback: number): number {
  const value = Number(arg(name, String(fallback)));
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}: a whole number >= 1, got ${arg(name)}`);
  return value;
}

const sides = { a: arg("--a").split(/\s+/).filter(Boolean), b: arg("--b").split(/\s+/).filter(Boolean) };
const pairs = count("--pairs", 6);
const seconds = count("--seconds", 8);
const inFlight = count("--in-flight", 8);
const loadFlags = ["--in-flight", String(inFlight), ...(args["all-pools"] === true ? [] : ["--one-pool"])];
const ALL_CORES = `0-${availableParallelism() - 1}`;

/** One run of a side: a fresh server, the load, each thread's share of a core while it ran. */
async function run(side: "a" | "b", pair: number): Promise<number> {
  const server = await startServer(64, ALL_CORES, ...sides[side]);
  try {
    const pid = server.child.pid!;
    const before = threadTimes(pid);
    const ws = wsLoad(server.url, ALL_CORES, seconds, ...loadFlags);
    const after = threadTimes(pid);
    /** A thread's share of the run's wall time, in % of a core: on a CPU, or runnable and waiting for one. */
    const pct = (tid: number, of: keyof ThreadTimes) => round((100 * ((after.get(tid)?.[of] ?? 0) - (before.get(tid)?.[of] ?? 0))) / (seconds * 1e6), 0);
    const others = [...after.keys()].filter((tid) => tid !== pid);
    const busiest = others.reduce((a, b) => (pct(b, "runUs") > pct(a, "runUs") ? b : a), others[0] ?? pid);
    emit({
      bench: "ws-ab",
      pair,
      side,
      flags: sides[side].join(" "),
      picksPerS: Math.round(ws.picksPerS),
      p99FrameUs: Math.round(ws.frameP99Ms * 1000),
      mainThreadPct: pct(pid, "runUs"),
      mainThreadWaitPct: pct(pid, "waitUs"),
      busiestOtherThreadPct: busiest === pid ? 0 : pct(busiest, "runUs"),
      busiestOtherThreadWaitPct: busiest === pid ? 0 : pct(busiest, "waitUs"),
      generatorPct: ws.cpuPct,
      stealPct: ws.stealPct,
      errors: ws.errors,
    });
    return ws.picksPerS;
  } finally {
    await stopServer(server);
  }
}

note(`bench:ws-ab: ${pairs} pairs of ${seconds} s, ${inFlight} frames in flight; A: ${sides.a.join(" ")}; B: ${sides.b.join(" ")}`);
const ratios: number[] = [];
for (let pair = 0; pair < pairs; pair++) {
  const order = pair % 2 === 0 ? (["a", "b"] as const) : (["b", "a"] as const);
  const rate: Record<string, number> = {};
  for (const side of order) rate[side] = await run(side, pair);
  ratios.push(round(rate.b / rate.a, 3));
}
emit({
  bench: "ws-ab",
  case: "summary",
  a: sides.a.join(" "),
  b: sides.b.join(" "),
  pairs,
  bAhead: ratios.filter((r) => r > 1).length,
  medianRatioBoverA: round(median(ratios), 3),
  ratios,
});
