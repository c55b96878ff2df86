// bench:rpc — the pick RPC against a trivial handler on the same uWebSockets.js server, as SPEC.md §9
// asks: (a) wrk, server pinned to one core and wrk to the other, 32 connections, POST /v1/pick on a
// 16x16 pool vs a handler that reads the whole body and answers a fixed JSON of a pick's size, after
// a warm-up of each run in turns (pick, trivial, pick, ...) so each ratio compares neighbours, the
// median ratio reported, and beside it the ratio of the server's CPU time per request in each turn;
// (b) p50/p99 at half of (a)'s pick rate from an open-loop generator that measures from each
// request's scheduled send time, and how busy that keeps the server (requests arriving one at a time
// each cost it more than wrk's, which arrive many to a loop turn), then the trivial handler and nginx
// (when installed) at the same rate: the floors of this server and of the host; (c) msgpack frames
// of 64 picks over WS /v1/stream on 64x64 pools, the server as shipped sharing both cores with the
// generator: over all three pools, and on one. Before them, bench/pick-path.ts: the server's own CPU time per
// pick without sockets. Every line carries the CPU steal the machine saw during its runs: on a shared
// virtual machine the host takes time from both cores, and wall-clock rates move with it.
// JSON lines on stdout, progress on stderr. --quick for shorter runs. Needs wrk (Debian package).

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { emit, median, note, round, withSteal } from "./measure.js";
import { hasNginx, measured, startNginx, startServer, stopServer, wsLoad, type Server, type WsResult } from "./rpc-procs.js";
import { PICK_BODY } from "./rpc-workload.js";
import { benchArgs } from "./args.js";

const quick = benchArgs("bench:rpc", { quick: { type: "boolean" } }).values.quick === true;
const DURATION_S = quick ? 3 : 10;
/** wrk runs of each handler in (a), alternating. */
const TURNS = quick ? 1 : 3;
const TURN_S = quick ? 3 : 5;
/**
 * wrk on each handler before the turns, not counted: a fresh server compiles its code as it first runs
 * it (its compiler threads share its one core): without this, the first pick turn was the slowest of
 * the three in each of the last three runs, by up to 2.3x (bench:rpc's stderr).
 */
const WARMUP_S = quick ? 1 : 2;
const CONNECTIONS = 32;
const cores = availableParallelism();
/** Server on the first core, load generators on the last (the same core when there is only one). */
const SERVER_CORE = 0;
const CLIENT_CORE = cores - 1;

interface WrkResult {
  rps: number;
  /** The server's CPU time (user + system) per request answered: time stolen by the host is not in it. */
  serverCpuUsPerRequest: number;
  stealPct: number | null;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
}

/** One wrk run of POSTs of `body` to `server`, pinned to CLIENT_CORE. */
function wrk(server: Server, path: string, body: string, durationS: number): WrkResult {
  const script = join(tmpdir(), `headroom-wrk-${process.pid}.lua`);
  writeFileSync(
    script,
    [`wrk.method = "POST"`, `wrk.body = ${JSON.stringify(body)}`, `wrk.headers["content-type"] = "application/json"`].join("\n"),
  );
  const { value: run, serverCpuMs } = measured(server, () =>
    withSteal(() =>
      spawnSync("taskset", ["-c", String(CLIENT_CORE), "wrk", "-t1", `-c${CONNECTIONS}`, `-d${durationS}s`, "--latency", "-s", script, server.url + path], {
        encoding: "utf8",
      }),
    ),
  );
  if (run.status !== 0) throw new Error(`wrk failed: ${run.stderr || run.error}`);
  const out = run.stdout;
  const number = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const ms = (re: RegExp) => {
    const m = re.exec(out);
    if (!m) return NaN;
    const scale: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3 };
    return Number(m[1]) * scale[m[2]];
  };
  const requests = number(/(\d+) requests in/);
  return {
    rps: number(/Requests\/sec:\s+([\d.]+)/),
    serverCpuUsPerRequest: (serverCpuMs * 1000) / requests,
    stealPct: run.stealPct,
    p50Ms: ms(/50%\s+([\d.]+)(us|ms|s)/),
    p99Ms: ms(/99%\s+([\d.]+)(us|ms|s)/),
    requests,
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/) || 0,
  };
}

interface OpenLoopResult {
  sent: number;
  p50Ms: number;
  p99Ms: number;
  /** p99 of how late the generator itself sent requests that found a connection idle (its own lost time). */
  sendLateP99Ms: number;
  errors: number;
  stealPct: number | null;
  /** The server's CPU time over the run's wall time (warm-up included), in % of its one core. */
  serverBusyPct: number;
  /** The server's CPU time per request sent. */
  serverCpuUsPerRequest: number;
}

/** Runs bench/open-loop.js pinned to CLIENT_CORE against `server` and returns its JSON result. */
function openLoop(server: Server, rate: number, path = "/v1/pick"): OpenLoopResult {
  const script = new URL("./open-loop.js", import.meta.url).pathname;
  const { value: run, serverCpuMs, wallMs } = measured(server, () =>
    withSteal(() =>
      spawnSync("taskset", ["-c", String(CLIENT_CORE), process.execPath, script, server.url, String(rate), String(DURATION_S), PICK_BODY, path], { encoding: "utf8" }),
    ),
  );
  if (run.status !== 0) throw new Error(`open-loop generator failed: ${run.stderr}`);
  process.stderr.write(run.stderr);
  const result = JSON.parse(run.stdout) as Omit<OpenLoopResult, "stealPct" | "serverBusyPct" | "serverCpuUsPerRequest">;
  return { ...result, stealPct: run.stealPct, serverBusyPct: (100 * serverCpuMs) / wallMs, serverCpuUsPerRequest: (1000 * serverCpuMs) / result.sent };
}

/** The open loop against nginx on SERVER_CORE answering `fixed`, a fresh instance. */
async function nginxOpenLoop(fixed: string, rate: number): Promise<OpenLoopResult> {
  const nginx = await startNginx(String(SERVER_CORE), fixed);
  try {
    return openLoop(nginx, rate, "/bench/fixed");
  } finally {
    await stopServer(nginx);
  }
}

/** bench/pick-path.js pinned to SERVER_CORE; its JSON lines are passed on. */
function pickPath(): void {
  const script = new URL("./pick-path.js", import.meta.url).pathname;
  const args = ["-c", String(SERVER_CORE), process.execPath, script, ...(quick ? ["--quick"] : [])];
  const run = withSteal(() => spawnSync("taskset", args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
  if (run.status !== 0) throw new Error("pick-path measurement failed");
  for (const line of run.stdout.trim().split("\n")) emit({ ...JSON.parse(line), stealPct: run.stealPct });
}

if (spawnSync("wrk", ["--version"]).error) {
  note("bench:rpc needs wrk (apt-get install wrk)");
  process.exit(2);
}
note(`bench:rpc: HTTP cases with the server on core ${SERVER_CORE} and the load on core ${CLIENT_CORE}, WebSocket cases on all ${cores} cores, ${DURATION_S} s per run`);

pickPath();

let small = await startServer(16, String(SERVER_CORE));
try {
  const pickBodyFixed = await (await fetch(`${small.url}/v1/pick`, { method: "POST", headers: { "content-type": "application/json" }, body: PICK_BODY })).text();
  const fixedBody = await (await fetch(`${small.url}/bench/fixed`, { method: "POST", body: PICK_BODY })).text();
  note(`pick response: ${pickBodyFixed.length} bytes, the trivial handler's ${fixedBody.length}`);
  wrk(small, "/v1/pick", PICK_BODY, WARMUP_S);
  wrk(small, "/bench/fixed", PICK_BODY, WARMUP_S);
  const picks: WrkResult[] = [];
  const trivials: WrkResult[] = [];
  for (let turn = 0; turn < TURNS; turn++) {
    const pick = wrk(small, "/v1/pick", PICK_BODY, TURN_S);
    note(`pick: ${pick.rps.toFixed(0)} req/s, p50 ${pick.p50Ms} ms, p99 ${pick.p99Ms} ms, server ${pick.serverCpuUsPerRequest.toFixed(1)} CPU µs per request, steal ${pick.stealPct} %`);
    const trivial = wrk(small, "/bench/fixed", PICK_BODY, TURN_S);
    note(`trivial: ${trivial.rps.toFixed(0)} req/s, p50 ${trivial.p50Ms} ms, p99 ${trivial.p99Ms} ms, server ${trivial.serverCpuUsPerRequest.toFixed(1)} CPU µs per request, steal ${trivial.stealPct} %`);
    picks.push(pick);
    trivials.push(trivial);
  }
  const ratios = picks.map((p, i) => round(p.rps / trivials[i].rps, 3));
  // The same ratio from the server's CPU time per request, which leaves out what the host stole (its
  // neighbours still slow what runs): the throughput ratio on a core the server has to itself.
  const cpuRatios = picks.map((p, i) => round(trivials[i].serverCpuUsPerRequest / p.serverCpuUsPerRequest, 3));
  // The turn whose ratio is the median gives the line's rates.
  const mid = ratios.indexOf(median(ratios));
  const pick = picks[mid];
  const trivial = trivials[mid];
  // A fresh server for the open loop: the wrk run leaves hundreds of thousands of unreported picks in
  // flight (no gateway reports here), and their bookkeeping is not what (b) measures.
  await stopServer(small);
  small = await startServer(16, String(SERVER_CORE));
  const rate = Math.max(1, Math.round(pick.rps / 2));
  const open = openLoop(small, rate);
  note(`open loop at ${rate}/s: p50 ${open.p50Ms.toFixed(3)} ms, p99 ${open.p99Ms.toFixed(3)} ms, ${open.errors} errors, server busy ${open.serverBusyPct.toFixed(0)} % (${open.serverCpuUsPerRequest.toFixed(1)} CPU µs a request), generator late p99 ${open.sendLateP99Ms.toFixed(3)} ms`);
  // The machine's floor: the trivial handler at the same offered rate, on the same server.
  const openTrivial = openLoop(small, rate, "/bench/fixed");
  note(`open loop at ${rate}/s, trivial handler: p50 ${openTrivial.p50Ms.toFixed(3)} ms, p99 ${openTrivial.p99Ms.toFixed(3)} ms, server busy ${openTrivial.serverBusyPct.toFixed(0)} % (${openTrivial.serverCpuUsPerRequest.toFixed(1)} CPU µs a request), generator late p99 ${openTrivial.sendLateP99Ms.toFixed(3)} ms`);
  // Under both, the floor of the host, the loopback and the generator: nginx answering the same bytes.
  const floor = hasNginx() ? await nginxOpenLoop(fixedBody, rate) : undefined;
  if (floor === undefined) note("no nginx on the PATH (apt-get install nginx-light): the nginx reference is left out");
  else note(`open loop at ${rate}/s, nginx: p50 ${floor.p50Ms.toFixed(3)} ms, p99 ${floor.p99Ms.toFixed(3)} ms, nginx busy ${floor.serverBusyPct.toFixed(0)} % (${floor.serverCpuUsPerRequest.toFixed(1)} CPU µs a request), generator late p99 ${floor.sendLateP99Ms.toFixed(3)} ms`);
  emit({
    bench: "rpc",
    case: "pick-http",
    pool: "16x16",
    rps: Math.round(pick.rps),
    trivialRps: Math.round(trivial.rps),
    ratio: ratios[mid],
    p50Us: Math.round(open.p50Ms * 1000),
    p99Us: Math.round(open.p99Ms * 1000),
    openLoopRate: rate,
    trivialP50Us: Math.round(openTrivial.p50Ms * 1000),
    trivialP99Us: Math.round(openTrivial.p99Ms * 1000),
    // Requests arriving one at a time cost more than wrk's, which arrive many to a loop turn.
    openLoopBusyPct: Math.round(open.serverBusyPct),
    trivialOpenLoopBusyPct: Math.round(openTrivial.serverBusyPct),
    openLoopCpuUsPerRequest: round(open.serverCpuUsPerRequest, 1),
    trivialOpenLoopCpuUsPerRequest: round(openTrivial.serverCpuUsPerRequest, 1),
    nginxP50Us: floor === undefined ? null : Math.round(floor.p50Ms * 1000),
    nginxP99Us: floor === undefined ? null : Math.round(floor.p99Ms * 1000),
    nginxOpenLoopBusyPct: floor === undefined ? null : Math.round(floor.serverBusyPct),
    wrkP50Us: Math.round(pick.p50Ms * 1000),
    wrkP99Us: Math.round(pick.p99Ms * 1000),
    ratios,
    cpuUsPerRequest: round(pick.serverCpuUsPerRequest, 1),
    trivialCpuUsPerRequest: round(trivial.serverCpuUsPerRequest, 1),
    cpuRatios,
    wrkStealPct: picks.flatMap((p, i) => [p.stealPct, trivials[i].stealPct]),
    openLoopStealPct: [open.stealPct, openTrivial.stealPct, ...(floor === undefined ? [] : [floor.stealPct])],
    sendLateP99Us: [open, openTrivial, ...(floor === undefined ? [] : [floor])].map((r) => Math.round(r.sendLateP99Ms * 1000)),
    errors: [...picks, ...trivials].reduce((n, r) => n + r.non2xx, 0) + open.errors + openTrivial.errors + (floor?.errors ?? 0),
  });
  // The same open loop with every planner ticking each second with ARIMA: planner work must not show.
  await stopServer(small);
  small = await startServer(16, String(SERVER_CORE), "--planners-every-second");
  const busy = openLoop(small, rate);
  note(`open loop at ${rate}/s, planners every second: p50 ${busy.p50Ms.toFixed(3)} ms, p99 ${busy.p99Ms.toFixed(3)} ms`);
  emit({
    bench: "rpc",
    case: "pick-http-planners-1s",
    pool: "16x16",
    openLoopRate: rate,
    p50Us: Math.round(busy.p50Ms * 1000),
    p99Us: Math.round(busy.p99Ms * 1000),
    sendLateP99Us: Math.round(busy.sendLateP99Ms * 1000),
    openLoopBusyPct: Math.round(busy.serverBusyPct),
    stealPct: busy.stealPct,
    errors: busy.errors,
  });
} finally {
  await stopServer(small);
}

// pick-ws: each frame's picks over all three pools (three batches a frame); pick-ws-one-pool: every
// pick on one of them, as the front-end issue words the case (one batch of 64 a frame). The issue counts
// the generator on the same two cores, so here nothing is pinned: the server runs as shipped (its
// default workers settings: one kernel thread beside the main thread on two cores, batches of at least
// inlineBelowPairs pairs sent to it) and shares both cores with the generator. WS_IN_FLIGHT frames are
// in flight, as a gateway's stream keeps several; each frame's latency is reported beside the rate.
// ws-trivial: the same generator and frames against the trivial WebSocket handler of the same server
// process (bench/rpc-server.ts: a fixed answer frame of a pick answer's size, no decoding), what the
// generator, uWebSockets.js and the two cores allow without headroom's work. The cases run in turns,
// a fresh server each, and each line gives the median turn's figures.
const WS_IN_FLIGHT = 8;
const ALL_CORES = `0-${cores - 1}`;
const wsRuns = new Map<string, { ws: WsResult; serverCpuUsPerPick: number }[]>();
for (let turn = 0; turn < TURNS; turn++) {
  for (const [name, flags] of [
    ["pick-ws", []],
    ["pick-ws-one-pool", ["--one-pool"]],
    ["ws-trivial", []],
  ] as const) {
    const large = await startServer(64, ALL_CORES, "--product-workers");
    const url = name === "ws-trivial" ? large.trivialWsUrl : large.url;
    try {
      const { value: ws, serverCpuMs } = measured(large, () => wsLoad(url, ALL_CORES, DURATION_S, "--in-flight", String(WS_IN_FLIGHT), ...flags));
      // The server's CPU per pick answered, over all its threads.
      const serverCpuUsPerPick = (serverCpuMs * 1000) / ws.picks;
      note(`WebSocket ${name}, 64 picks per frame on 64x64: ${ws.picksPerS.toFixed(0)} picks/s, frame p99 ${ws.frameP99Ms.toFixed(1)} ms, server ${serverCpuUsPerPick.toFixed(1)} CPU µs per pick, steal ${ws.stealPct} %`);
      wsRuns.set(name, [...(wsRuns.get(name) ?? []), { ws, serverCpuUsPerPick }]);
    } finally {
      await stopServer(large);
    }
  }
}
for (const [name, runs] of wsRuns) {
  const rates = runs.map((r) => Math.round(r.ws.picksPerS));
  const { ws, serverCpuUsPerPick } = runs[rates.indexOf(median(rates))];
  emit({
    bench: "rpc",
    case: name,
    pool: name === "ws-trivial" ? null : "64x64",
    frame: 64,
    picksPerS: Math.round(ws.picksPerS),
    p50FrameUs: Math.round(ws.frameP50Ms * 1000),
    p99FrameUs: Math.round(ws.frameP99Ms * 1000),
    framesInFlight: WS_IN_FLIGHT,
    cpuUsPerPick: round(serverCpuUsPerPick, 1),
    runsPicksPerS: rates,
    stealPct: runs.map((r) => r.ws.stealPct),
    errors: runs.reduce((n, r) => n + r.ws.errors, 0),
  });
}
