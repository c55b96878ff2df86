// The processes bench:rpc and bench:ws-ab start: bench/rpc-server.js and bench/ws-load.js under
// taskset, and the CPU time the server's threads use.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { procCpuUs, withSteal } from "./measure.js";

export interface Server {
  child: ChildProcess;
  url: string;
}

/** Starts bench/rpc-server.js on the cores listed (taskset -c); resolves when it prints its port. */
export async function startServer(pods: number, cpus: string, ...flags: string[]): Promise<Server> {
  const script = new URL("./rpc-server.js", import.meta.url).pathname;
  const child = spawn("taskset", ["-c", cpus, process.execPath, script, String(pods), ...flags], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, "line")) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return { child, url: `http://127.0.0.1:${port}` };
}

export async function stopServer(server: Server): Promise<void> {
  server.child.kill("SIGTERM");
  await once(server.child, "exit");
}

/** CPU time a process has used; the server runs under taskset, which execs it: the same pid. */
const processCpuMs = (pid: number) => procCpuUs(`/proc/${pid}/stat`) / 1000;

/** What `load` returns, with the CPU time the server used (all its threads) and the wall time while it ran. */
export function measured<T>(server: Server, load: () => T): { value: T; serverCpuMs: number; wallMs: number } {
  const cpuBeforeMs = processCpuMs(server.child.pid!);
  const startedMs = performance.now();
  const value = load();
  return { value, serverCpuMs: processCpuMs(server.child.pid!) - cpuBeforeMs, wallMs: performance.now() - startedMs };
}

/** What the scheduler says of one thread so far: µs run on a CPU, and µs runnable but waiting for one. */
export interface ThreadTimes {
  runUs: number;
  waitUs: number;
}

/**
 * Each thread of a process by thread id, from /proc/<pid>/task/<tid>/schedstat (run and run-queue wait
 * in ns; threads that end while read are left out).
 */
export function threadTimes(pid: number): Map<number, ThreadTimes> {
  const times = new Map<number, ThreadTimes>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [runNs, waitNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
      times.set(Number(tid), { runUs: runNs / 1000, waitUs: waitNs / 1000 });
    } catch {
      // ended since the listing
    }
  }
  return times;
}

export type WsResult = {
  frames: number;
  picks: number;
  picksPerS: number;
  frameP50Ms: number;
  frameP99Ms: number;
  errors: number;
  /** The generator's own CPU time over the run's wall time, in % of one core. */
  cpuPct: number;
  stealPct: number | null;
};

/** Runs bench/ws-load.js for durationS on the cores listed: msgpack frames of 64 picks over one WebSocket. */
export function wsLoad(url: string, cpus: string, durationS: number, ...flags: string[]): WsResult {
  const script = new URL("./ws-load.js", import.meta.url).pathname;
  const args = ["-c", cpus, process.execPath, "--experimental-websocket", script, url.replace("http:", "ws:") + "/v1/stream", String(durationS), ...flags];
  const run = withSteal(() => spawnSync("taskset", args, { encoding: "utf8" }));
  if (run.status !== 0) throw new Error(`WebSocket generator failed: ${run.stderr}`);
  return { ...JSON.parse(run.stdout), stealPct: run.stealPct };
}
