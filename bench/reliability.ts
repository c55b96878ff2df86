// bench:reliability — faults injected into real servers and processes on loopback, with steady pick
// traffic through headroom's HTTP API while they happen. Per scenario one JSON line:
// {"bench":"reliability","case","requests","lost","duplicated","errors":{code:n},"recoveryMs",…}.
// `lost` counts picks sent and never answered; `duplicated` request ids answered twice; `errors` the
// answers that were not 200, by error code; `recoveryMs` is the scenario's own (said in each `note`).
// --quick shortens every phase (CI smoke run).

import { spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Piscina } from "piscina";
import { Registry } from "prom-client";
import { stringify as stringifyYaml } from "yaml";
import { parseConfig } from "../src/config/load.js";
import { Engine } from "../src/engine/engine.js";
import { silentLogger } from "../src/log.js";
import { shippedFile } from "../src/paths.js";
import { startPodFleet, type FleetPodSpec, type PodFleet } from "../src/podsim/fleet.js";
import { createServer } from "../src/server/app.js";
import { LatencyPredictorStandIn } from "./latency-predictor-service.js";
import { emit, note } from "./measure.js";
import { benchArgs } from "./args.js";

const quick = benchArgs("bench:reliability", { quick: { type: "boolean" } }).values.quick === true;
const PHASE_MS = quick ? 600 : 2000;
const RATE = quick ? 100 : 200;

interface Outcome {
  case: string;
  requests: number;
  lost: number;
  duplicated: number;
  errors: Record<string, number>;
  recoveryMs: number;
  note: string;
  [extra: string]: unknown;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Open-loop picks at RATE per second until stopped; every answer is kept by request id. */
class Traffic {
  sent = 0;
  private readonly answers = new Map<string, number>();
  private readonly errors: Record<string, number> = {};
  private readonly pending = new Set<Promise<void>>();
  readonly decodes: { atMs: number; decode: string }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly url: string,
    private readonly level = "medium",
  ) {}

  start(): void {
    const t0 = performance.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) * RATE) / 1000);
      while (this.sent < due) this.send(`r${this.sent++}`);
    }, 5);
  }

  private send(requestId: string): void {
    const p = fetch(`${this.url}/v1/pick`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requestId, sloLevel: this.level, inputTokens: 800, maxTokens: 100 }),
      signal: AbortSignal.timeout(10_000),
    })
      .then(async (res) => {
        const body = (await res.json()) as { requestId?: string; decode?: string; error?: { code: string } };
        this.answers.set(requestId, (this.answers.get(requestId) ?? 0) + 1);
        if (res.status !== 200) this.errors[body.error?.code ?? `HTTP_${res.status}`] = (this.errors[body.error?.code ?? `HTTP_${res.status}`] ?? 0) + 1;
        else this.decodes.push({ atMs: performance.now(), decode: body.decode! });
      })
      .catch(() => {
        // No answer at all: counted as lost below.
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Stops sending and waits for every answer (or its timeout). */
  async stop(): Promise<{ requests: number; lost: number; duplicated: number; errors: Record<string, number> }> {
    if (this.timer) clearInterval(this.timer);
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    const duplicated = [...this.answers.values()].filter((n) => n > 1).length;
    return { requests: this.sent, lost: this.sent - this.answers.size, duplicated, errors: this.errors };
  }
}

interface State {
  pools: { pods: { address: string; freshness: string; eligible: boolean }[] }[];
}

async function headroomFor(yaml: string, env?: Record<string, string>) {
  const { config } = parseConfig(yaml);
  const registry = new Registry();
  const engine = await Engine.create({ config, logger: silentLogger, registry, env });
  engine.start();
  const server = createServer({ engine, registry, config: config.server, logger: silentLogger });
  const port = await server.listen("127.0.0.1", 0);
  return {
    url: `http://127.0.0.1:${port}`,
    engine,
    registry,
    state: () => engine.state() as State,
    async close() {
      await server.close();
      await engine.close();
    },
  };
}

const MEDIUM_FLEET: FleetPodSpec[] = [
  { name: "p0", role: "prefill", pool: "medium" },
  { name: "p1", role: "prefill", pool: "medium" },
  { name: "d0", role: "decode", pool: "medium" },
  { name: "d1", role: "decode", pool: "medium" },
];

function fleetYaml(fleet: PodFleet, extra = ""): string {
  return `${stringifyYaml({ topology: { kvBytesPerToken: 131072 }, pools: fleet.poolsConfig() })}\n${extra}`;
}

async function waitUntil(ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await ok()) return performance.now() - t0;
    await sleep(5);
  }
  return NaN;
}

/** A remote predictor that hangs, answers slowly, or answers 500, then recovers. */
async function predictorFault(mode: "hang" | "slow" | "error"): Promise<Outcome> {
  const standIn = await LatencyPredictorStandIn.start();
  const env = { PREFILL_TTFT_TRAINING_URL: standIn.url, PREFILL_TTFT_PREDICTION_URL: standIn.url };
  const h = await headroomFor(
    `pools:\n  - sloLevel: medium\n    pods:\n${[1, 2, 3, 4].map((i) => `      - { address: "10.0.0.${i}:8000", role: ${i <= 2 ? "prefill" : "decode"} }`).join("\n")}\npredictors: { prefillTtft: remote }\nworkers: { threads: 0 }\n`,
    env,
  );
  const fallbacks = async () => {
    // The whole exposition: the predictor thread's counters are mirrored when the registry is collected.
    const metric = await h.registry.metrics();
    return [...metric.matchAll(/^headroom_predictor_fallbacks_total\{[^}]*\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
  };
  const traffic = new Traffic(h.url);
  traffic.start();
  await sleep(PHASE_MS);
  if (mode === "hang") standIn.behaviour = { ...standIn.behaviour, predictDelayMs: 60_000 };
  if (mode === "slow") standIn.behaviour = { ...standIn.behaviour, predictDelayMs: 200 };
  if (mode === "error") standIn.behaviour = { ...standIn.behaviour, predict: "error" };
  await sleep(PHASE_MS);
  const duringFault = await fallbacks();
  standIn.behaviour = { ...standIn.behaviour, predict: "ok", predictDelayMs: 0 };
  const restoredAt = performance.now();
  // Recovered when the fallback count stops growing for five refresh periods.
  let last = await fallbacks();
  let stableSince = performance.now();
  await waitUntil(async () => {
    const now = await fallbacks();
    if (now !== last) {
      last = now;
      stableSince = performance.now();
    }
    return performance.now() - stableSince >= 500;
  });
  const recoveryMs = Math.max(0, stableSince - restoredAt);
  const result = await traffic.stop();
  await h.close();
  await standIn.close();
  return {
    case: `predictor-${mode}`,
    ...result,
    recoveryMs: Math.round(recoveryMs),
    fallbacks: duringFault,
    note: "picks never wait for the service: its pods fall back to the profile; recoveryMs: from the service answering again until fallbacks stop",
  };
}

/** A decode pod whose server stops (metrics and completions), then comes back on the same port. */
async function podStops(flap: boolean): Promise<Outcome> {
  const fleet = await startPodFleet({ pods: MEDIUM_FLEET });
  const h = await headroomFor(fleetYaml(fleet, "workers: { threads: 0 }"));
  const victim = fleet.pods.find((p) => p.spec.name === "d1")!;
  const address = victim.address;
  await waitUntil(() => h.state().pools.every((p) => p.pods.every((pod) => pod.freshness === "fresh")));
  const traffic = new Traffic(h.url);
  traffic.start();
  await sleep(PHASE_MS);
  await victim.close();
  const stoppedAt = performance.now();
  const excludedAfter = await waitUntil(() => h.state().pools.some((p) => p.pods.some((pod) => pod.address === address && !pod.eligible)));
  await sleep(PHASE_MS);
  let recoveryMs = excludedAfter;
  let back: PodFleet | null = null;
  if (flap) {
    back = await startPodFleet({ pods: [{ name: "d1", role: "decode", pool: "medium", port: Number(address.split(":")[1]) }] });
    const restartedAt = performance.now();
    recoveryMs = await waitUntil(() => traffic.decodes.some((d) => d.atMs > restartedAt && d.decode === address));
  }
  const result = await traffic.stop();
  const afterExclusion = traffic.decodes.filter((d) => d.atMs > stoppedAt + excludedAfter + 50 && d.decode === address && !flap).length;
  await h.close();
  await fleet.close();
  await back?.close();
  return {
    case: flap ? "pod-flap" : "pod-metrics-stop",
    ...result,
    recoveryMs: Math.round(recoveryMs),
    excludedAfterMs: Math.round(excludedAfter),
    picksToDeadPodAfterExclusion: afterExclusion,
    note: flap
      ? "recoveryMs: from the pod's server listening again until a pick names it"
      : "recoveryMs: from the pod's server stopping until it leaves the candidate set (scrape failures, then staleness)",
  };
}

/** A kernel worker thread terminated while batches run on it. */
async function workerKilled(): Promise<Outcome> {
  const h = await headroomFor(
    `pools:\n  - sloLevel: medium\n    pods:\n${[1, 2, 3, 4].map((i) => `      - { address: "10.0.0.${i}:8000", role: ${i <= 2 ? "prefill" : "decode"} }`).join("\n")}\nworkers: { threads: 1, inlineBelowPairs: 0 }\n`,
  );
  const pool = (h.engine as unknown as { workers: Piscina }).workers;
  const traffic = new Traffic(h.url);
  traffic.start();
  await sleep(PHASE_MS);
  const before = traffic.decodes.length;
  await pool.threads[0]!.terminate();
  const killedAt = performance.now();
  const recoveryMs = await waitUntil(() => traffic.decodes.some((d) => d.atMs > killedAt), 20_000);
  await sleep(PHASE_MS);
  const result = await traffic.stop();
  await h.close();
  return {
    case: "worker-killed",
    ...result,
    recoveryMs: Math.round(recoveryMs),
    servedBefore: before,
    note: "picks of a batch running on the dying thread are answered WORKER_FAILED, the others wait for the replacement; recoveryMs: until Piscina's replacement answers a pick",
  };
}

/** The configuration file replaced by an invalid one, then SIGHUP, on `headroom serve` as a child process. */
async function invalidReload(): Promise<Outcome> {
  const fleet = await startPodFleet({ pods: MEDIUM_FLEET });
  const dir = mkdtempSync(join(tmpdir(), "headroom-reliability-"));
  const file = join(dir, "headroom.yaml");
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  writeFileSync(file, fleetYaml(fleet, `server: { port: ${port} }`));
  const child = spawn(process.execPath, [shippedFile("dist", "src", "cli.js"), "serve", "--config", file], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (c) => (log += c));
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 20_000);
  const stateBefore = JSON.stringify(((await (await fetch(`${url}/v1/state`)).json()) as { pools: { name: string; targets: unknown }[] }).pools.map((p) => [p.name, p.targets]));
  const traffic = new Traffic(url);
  traffic.start();
  await sleep(PHASE_MS);
  writeFileSync(file, "pools:\n  - sloLevel: medium\n    targets: { ttftMs: -5 }\n");
  child.kill("SIGHUP");
  const refusedAfter = await waitUntil(() => log.includes("configuration reload refused"));
  await sleep(PHASE_MS);
  const stateAfter = JSON.stringify(((await (await fetch(`${url}/v1/state`)).json()) as { pools: { name: string; targets: unknown }[] }).pools.map((p) => [p.name, p.targets]));
  const result = await traffic.stop();
  child.kill("SIGTERM");
  await once(child, "exit");
  await fleet.close();
  return {
    case: "config-invalid-sighup",
    ...result,
    recoveryMs: 0,
    refusedAfterMs: Math.round(refusedAfter),
    stateUnchanged: stateBefore === stateAfter,
    note: "the invalid file is refused with its problems logged and the running configuration kept: nothing to recover from",
  };
}

/** A burst of ten times what the server answers per second, all at once. */
async function burst(): Promise<Outcome> {
  const fleet = await startPodFleet({ pods: MEDIUM_FLEET });
  const h = await headroomFor(fleetYaml(fleet, "workers: { threads: 0 }"));
  await waitUntil(() => h.state().pools.every((p) => p.pods.every((pod) => pod.freshness === "fresh")));
  // Capacity: closed-loop picks over 32 connections for one phase.
  const probe = () =>
    fetch(`${h.url}/v1/pick`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"sloLevel":"medium","inputTokens":800,"maxTokens":100}' }).then((r) => r.arrayBuffer());
  let answered = 0;
  const until = performance.now() + PHASE_MS;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (performance.now() < until) {
        await probe();
        answered++;
      }
    }),
  );
  const capacity = Math.round((answered * 1000) / PHASE_MS);
  const size = Math.min(quick ? 5000 : 20_000, capacity * 10);
  const answers = new Map<string, number>();
  const errors: Record<string, number> = {};
  let lost = 0;
  const started = performance.now();
  // Every request is issued at once; they queue on 256 keep-alive connections (a gateway's pool), so the
  // client's own file-descriptor limit is not what the burst measures.
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const { port } = new URL(h.url);
  await Promise.all(
    Array.from(
      { length: size },
      (_, i) =>
        new Promise<void>((resolve) => {
          const req = request(
            { host: "127.0.0.1", port, path: "/v1/pick", method: "POST", agent, headers: { "content-type": "application/json" }, timeout: 60_000 },
            (res) => {
              let text = "";
              res.on("data", (c) => (text += c));
              res.on("end", () => {
                answers.set(`b${i}`, (answers.get(`b${i}`) ?? 0) + 1);
                if (res.statusCode !== 200) {
                  const code = (JSON.parse(text) as { error?: { code: string } }).error?.code ?? `HTTP_${res.statusCode}`;
                  errors[code] = (errors[code] ?? 0) + 1;
                }
                resolve();
              });
            },
          );
          req.on("error", () => {
            lost++;
            resolve();
          });
          req.end(JSON.stringify({ requestId: `b${i}`, sloLevel: "medium", inputTokens: 800, maxTokens: 100 }));
        }),
    ),
  );
  agent.destroy();
  const drainedMs = performance.now() - started;
  // Recovered when a lone pick is answered as fast as before the burst (within 2x its median).
  const lone = async () => {
    const t = performance.now();
    await probe();
    return performance.now() - t;
  };
  const baseline: number[] = [];
  const endOfBurst = performance.now();
  const recoveryMs = await waitUntil(async () => {
    baseline.push(await lone());
    return baseline.length >= 3 && baseline.slice(-3).every((ms) => ms < 5);
  });
  await h.close();
  await fleet.close();
  return {
    case: "burst-10x",
    requests: size,
    lost: lost + (size - answers.size - lost),
    duplicated: [...answers.values()].filter((n) => n > 1).length,
    errors,
    recoveryMs: Math.round(Number.isNaN(recoveryMs) ? NaN : recoveryMs),
    capacityRps: capacity,
    drainedMs: Math.round(drainedMs),
    note: `${size} picks sent at once (10x the ${capacity} req/s measured closed-loop, capped); recoveryMs: from the last answer until three lone picks in a row take under 5 ms (${Math.round(performance.now() - endOfBurst)} ms)`,
  };
}

const scenarios: [string, () => Promise<Outcome>][] = [
  ["predictor-hang", () => predictorFault("hang")],
  ["predictor-slow", () => predictorFault("slow")],
  ["predictor-error", () => predictorFault("error")],
  ["pod-metrics-stop", () => podStops(false)],
  ["pod-flap", () => podStops(true)],
  ["worker-killed", workerKilled],
  ["config-invalid-sighup", invalidReload],
  ["burst-10x", burst],
];

let failed = false;
for (const [name, run] of scenarios) {
  note(`reliability: ${name}`);
  const o = await run();
  const { note: text, ...line } = o;
  note(`  ${text}`);
  emit({ bench: "reliability", ...line });
  if (o.lost > 0 || o.duplicated > 0) failed = true;
}
process.exitCode = failed ? 1 : 0;
