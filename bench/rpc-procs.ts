// The processes bench:rpc and bench:ws-ab start: bench/rpc-server.js and bench/ws-load.js under
// taskset, and the CPU time the server's threads use.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { procCpuUs, withSteal } from "./measure.js";

export interface Server {
  child: ChildProcess;
  url: string;
}

/** bench/rpc-server.js, with its trivial WebSocket handler's base URL (WS /v1/stream on it). */
export interface RpcServer extends Server {
  trivialWsUrl: string;
}

/** Starts bench/rpc-server.js on the cores listed (taskset -c); resolves when it prints its port. */
export async function startServer(pods: number, cpus: string, ...flags: string[]): Promise<RpcServer> {
  const script = new URL("./rpc-server.js", import.meta.url).pathname;
  const child = spawn("taskset", ["-c", cpus, process.execPath, script, String(pods), ...flags], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, "line")) as [string];
  const { port, trivialWsPort } = JSON.parse(line) as { port: number; trivialWsPort: number };
  return { child, url: `http://127.0.0.1:${port}`, trivialWsUrl: `http://127.0.0.1:${trivialWsPort}` };
}

/** True when nginx is on the PATH (Debian's nginx-light; .ci/run installs it for the end-to-end test). */
export const hasNginx = () => spawnSync("nginx", ["-v"]).error === undefined;

/**
 * nginx as the reference server for the open loop, on the cores listed: one process (no master), keep-alive
 * without a request limit, answering `POST /bench/fixed` with `fixed` as it discards the body. What the
 * generator measures against it is the floor the host, the loopback and the generator leave, with a
 * server in C that does nothing.
 */
export async function startNginx(cpus: string, fixed: string): Promise<Server> {
  if (/['\\\n]/.test(fixed)) throw new Error("nginx reference: the fixed answer must not need quoting");
  const dir = mkdtempSync(join(tmpdir(), "headroom-nginx-"));
  const port = await freePort();
  const conf = [
    "worker_processes 1;",
    "master_process off;",
    "daemon off;",
    "pid nginx.pid;",
    "error_log stderr warn;",
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path tmp;",
    "  proxy_temp_path tmp;",
    "  fastcgi_temp_path tmp;",
    "  uwsgi_temp_path tmp;",
    "  scgi_temp_path tmp;",
    "  keepalive_requests 1000000000;",
    "  keepalive_timeout 600s;",
    "  server {",
    `    listen 127.0.0.1:${port};`,
    `    location = /bench/fixed { default_type application/json; return 200 '${fixed}'; }`,
    "  }",
    "}",
  ].join("\n");
  mkdirSync(join(dir, "tmp"));
  writeFileSync(join(dir, "nginx.conf"), conf);
  const child = spawn("taskset", ["-c", cpus, "nginx", "-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr"], { stdio: ["ignore", "ignore", "inherit"] });
  child.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const url = `http://127.0.0.1:${port}`;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`nginx reference exited with ${child.exitCode}`);
    try {
      await fetch(`${url}/bench/fixed`, { method: "POST", body: "{}" });
      return { child, url };
    } catch (err) {
      if (tries === 50) throw new Error(`nginx reference: not listening after 5 s: ${String(err)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, "close");
  return port;
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
