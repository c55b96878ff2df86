// The gateway end to end: simulated vLLM pods (in this process), headroom (`headroom serve` as a child
// process) scraping them, and a real nginx (a child process) with deploy/gateway/nginx.conf, its two
// addresses rewritten to the loopback ports used here. OpenAI requests with SLO levels and explicit SLO
// headers go through nginx; every response must come from the decode pod headroom chose, prefilled by
// the prefill pod it chose, and every completion must reach headroom as a report. Then the faults: a
// pod that dies mid-run and headroom restarting.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { runClient, type ClientResult } from "../../src/client/client.js";
import { startPodFleet, type PodFleet } from "../../src/podsim/fleet.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dir = mkdtempSync(join(tmpdir(), "headroom-e2e-"));

let fleet: PodFleet;
let headroomPort: number;
let gatewayPort: number;
let headroom: ChildProcess | null = null;
let nginx: ChildProcess;

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function startHeadroom(): Promise<void> {
  const child = spawn(process.execPath, [join(root, "dist/src/cli.js"), "serve", "--config", join(dir, "headroom.yaml")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (c) => (stderr += c));
  headroom = child;
  await waitFor("headroom to be ready", async () => {
    if (child.exitCode !== null) throw new Error(`headroom exited: ${stderr}`);
    return (await fetch(`http://127.0.0.1:${headroomPort}/readyz`)).status === 200;
  });
}

async function stopHeadroom(): Promise<void> {
  const child = headroom!;
  headroom = null;
  child.kill("SIGTERM");
  if (child.exitCode === null) await once(child, "exit");
}

interface Sent {
  status: number;
  headers: Headers;
  body: string;
}

async function viaGateway(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Sent> {
  const res = await fetch(`http://127.0.0.1:${gatewayPort}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

async function headroomMetric(line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${headroomPort}/metrics`)).text();
  return Number(line.exec(text)?.[1] ?? 0);
}

const reportsOk = () => headroomMetric(/^headroom_reports_total\{result="ok"\} (\d+)/m);

beforeAll(async () => {
  if (spawnSync("nginx", ["-v"]).error) throw new Error("the end-to-end test needs nginx (apt-get install nginx-light)");
  fleet = await startPodFleet({
    pods: [
      { name: "high-p0", role: "prefill", pool: "high", tp: 2 },
      { name: "high-d0", role: "decode", pool: "high", tp: 2 },
      { name: "medium-p0", role: "prefill", pool: "medium" },
      { name: "medium-p1", role: "prefill", pool: "medium" },
      { name: "medium-d0", role: "decode", pool: "medium" },
      { name: "medium-d1", role: "decode", pool: "medium" },
      { name: "low-b0", role: "both", pool: "low" },
    ],
  });
  headroomPort = await freePort();
  gatewayPort = await freePort();
  fleet.reportTo(`http://127.0.0.1:${headroomPort}/v1/report`);
  writeFileSync(
    join(dir, "headroom.yaml"),
    stringifyYaml({
      server: { host: "127.0.0.1", port: headroomPort },
      topology: { kvBytesPerToken: 131072 },
      // A loaded host can run a completion past twice its predicted time; its in-flight entry would
      // expire and its report count as unknown, failing the check that every completion is reported.
      pods: { inflightTtlFactor: 1000 },
      pools: fleet.poolsConfig(),
    }),
  );
  await startHeadroom();
  const conf = readFileSync(join(root, "deploy/gateway/nginx.conf"), "utf8")
    .replace("server 127.0.0.1:8080;", `server 127.0.0.1:${headroomPort};`)
    .replace("listen 127.0.0.1:8000;", `listen 127.0.0.1:${gatewayPort};`);
  expect(conf).toContain(`:${headroomPort};`);
  expect(conf).toContain(`:${gatewayPort};`);
  mkdirSync(join(dir, "tmp"), { recursive: true });
  writeFileSync(join(dir, "nginx.conf"), conf);
  nginx = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
  let nginxErr = "";
  nginx.stderr!.on("data", (c) => (nginxErr += c));
  await waitFor("nginx to listen", async () => {
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${nginxErr}`);
    await fetch(`http://127.0.0.1:${gatewayPort}/`);
    return true;
  });
  // Every pod scraped before traffic starts.
  await waitFor("every pod to be fresh", async () => {
    const state = (await (await fetch(`http://127.0.0.1:${headroomPort}/v1/state`)).json()) as { pools: { pods: { freshness: string }[] }[] };
    return state.pools.flatMap((p) => p.pods).every((p) => p.freshness === "fresh");
  });
});

afterAll(async () => {
  nginx?.kill("SIGTERM");
  if (headroom) await stopHeadroom();
  await fleet?.close();
});

const podNamed = (address: string | null) => fleet.pods.find((p) => p.address === address);

describe("through nginx", () => {
  it("serves every request on the decode pod headroom chose, prefilled where it chose, in the requested pool", async () => {
    const reportsBefore = await reportsOk();
    const prefilledBefore = new Map(fleet.pods.map((p) => [p, p.prefilled]));
    const asks: { headers: Record<string, string>; pool: string }[] = [
      ...Array.from({ length: 8 }, () => ({ headers: { "x-slo-level": "high" }, pool: "high" })),
      ...Array.from({ length: 12 }, () => ({ headers: { "x-slo-level": "medium" }, pool: "medium" })),
      ...Array.from({ length: 4 }, () => ({ headers: { "x-slo-level": "low" }, pool: "low" })),
      // Explicit targets without a level go to the default pool (medium), with those targets.
      ...Array.from({ length: 4 }, () => ({ headers: { "x-slo-ttft-ms": "900", "x-slo-tpot-ms": "60" }, pool: "medium" })),
    ];
    const sent = await Promise.all(asks.map((a, i) => viaGateway("/v1/completions", { prompt: "p".repeat(400 + 200 * i), max_tokens: 6 }, a.headers)));
    const remote = new Map<object, number>();
    sent.forEach((s, i) => {
      expect(s.status, s.body).toBe(200);
      expect(s.headers.get("x-headroom-pool")).toBe(asks[i].pool);
      const decode = s.headers.get("x-headroom-decode");
      expect(s.headers.get("x-pod-sim-decode")).toBe(decode);
      expect(fleet.byPool(asks[i].pool)).toContain(podNamed(decode));
      const prefill = s.headers.get("x-headroom-prefill");
      // Local prefill (the low pool's `both` pod) names no prefill pod; the decode pod prefilled then.
      expect(s.headers.get("x-pod-sim-prefill")).toBe(prefill === "" || prefill === null ? decode : prefill);
      const prefiller = podNamed(prefill === "" || prefill === null ? decode : prefill)!;
      remote.set(prefiller, (remote.get(prefiller) ?? 0) + 1);
    });
    // Each pod named as the prefill pod did exactly those prefills.
    for (const [pod, n] of remote) expect((pod as (typeof fleet.pods)[number]).prefilled - prefilledBefore.get(pod as (typeof fleet.pods)[number])!).toBe(n);
    await waitFor("every completion to be reported", async () => (await reportsOk()) - reportsBefore === asks.length);
  });

  it("headroom client through the gateway: pool, pods, TTFT and TPOT from the stream, judged against the pool's targets", async () => {
    const results: ClientResult[] = [];
    const summary = await runClient(
      { gatewayUrl: `http://127.0.0.1:${gatewayPort}`, level: "high", promptTokens: 500, maxTokens: 4, count: 3, concurrency: 3, chat: false, timeoutMs: 20_000 },
      (r) => results.push(r),
    );
    expect(summary).toMatchObject({ requests: 3, succeeded: 3 });
    for (const r of results) {
      expect(r.pool).toBe("high");
      expect(fleet.byPool("high").map((p) => p.address)).toContain(r.decode);
      expect(r.targets).toEqual({ ttftMs: 300, tpotMs: 30 });
      expect(r.tokens).toBe(4);
    }
  });

  it("streams a chat completion through nginx token by token", async () => {
    const s = await viaGateway("/v1/chat/completions", { messages: [{ role: "user", content: "stream please" }], max_tokens: 5, stream: true }, { "x-slo-level": "medium" });
    expect(s.status).toBe(200);
    const events = s.body.split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events).toHaveLength(7);
    expect(events.at(-1)).toBe("data: [DONE]");
    expect(s.headers.get("x-pod-sim-decode")).toBe(s.headers.get("x-headroom-decode"));
  });

  it("answers headroom's refusals with their status and code: 400 for an unknown level, 429 with retry-after when shed", async () => {
    const unknown = await viaGateway("/v1/completions", { prompt: "x" }, { "x-slo-level": "platinum" });
    expect(unknown.status).toBe(400);
    expect(unknown.headers.get("x-headroom-error-code")).toBe("UNKNOWN_LEVEL");
    // headroom's own message, naming the known levels (nginx drops the body; a header carries it).
    expect(JSON.parse(unknown.body).error).toEqual({ code: "UNKNOWN_LEVEL", message: "unknown SLO level 'platinum' (known: high, medium, low)" });
    const shed = await viaGateway("/v1/completions", { prompt: "x" }, { "x-slo-level": "high", "x-slo-ttft-ms": "0.001", "x-headroom-priority": "-1" });
    expect(shed.status).toBe(429);
    expect(shed.headers.get("retry-after")).toBe("1");
    expect(JSON.parse(shed.body).error.code).toBe("SHED");
  });
});

describe("faults", () => {
  it("a decode pod that dies mid-run leaves the candidate set; requests go elsewhere and nothing hangs", async () => {
    const victim = fleet.pods.find((p) => p.spec.name === "medium-d1")!;
    const address = victim.address;
    const during = Array.from({ length: 10 }, (_, i) => viaGateway("/v1/completions", { prompt: "q".repeat(800), max_tokens: 20 + i }, { "x-slo-level": "medium" }));
    await new Promise((r) => setTimeout(r, 20));
    await victim.close();
    // Requests in flight on it fail or finish, but every one gets an answer.
    const answered = await Promise.all(during);
    for (const a of answered) expect([200, 502]).toContain(a.status);
    await waitFor("the dead pod to leave the candidate set", async () => {
      const state = (await (await fetch(`http://127.0.0.1:${headroomPort}/v1/state`)).json()) as { pools: { pods: { address: string; eligible: boolean }[] }[] };
      return state.pools.flatMap((p) => p.pods).some((p) => p.address === address && !p.eligible);
    });
    const after = await Promise.all(Array.from({ length: 10 }, () => viaGateway("/v1/completions", { prompt: "r".repeat(800), max_tokens: 4 }, { "x-slo-level": "medium" })));
    for (const a of after) {
      expect(a.status).toBe(200);
      expect(a.headers.get("x-pod-sim-decode")).not.toBe(address);
    }
  });

  it("while headroom is down nginx answers a clear 503 with retry-after, and recovers when it is back", async () => {
    await stopHeadroom();
    const down = await viaGateway("/v1/completions", { prompt: "x", max_tokens: 2 }, { "x-slo-level": "low" });
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("1");
    expect(JSON.parse(down.body).error.code).toBe("SCHEDULER_UNAVAILABLE");
    await startHeadroom();
    await waitFor("the restarted headroom to see its pods", async () => (await viaGateway("/v1/completions", { prompt: "x", max_tokens: 2 }, { "x-slo-level": "low" })).status === 200);
    const back = await viaGateway("/v1/completions", { prompt: "y", max_tokens: 2 }, { "x-slo-level": "high" });
    expect(back.status).toBe(200);
    expect(back.headers.get("x-pod-sim-decode")).toBe(back.headers.get("x-headroom-decode"));
  });
});
