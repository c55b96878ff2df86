// The pod simulator (src/podsim/): real HTTP servers on loopback. OpenAI completions and chat, streamed
// and not; the prefill hop a decode pod makes when given x-prefiller-host-port; vLLM metrics that
// headroom's own parser reads, observed per token or per request as vLLM observes them; completion reports; every bad request refused with its status; the
// `headroom pod-sim` command as a child process; and the embedded demo scraping its pods for real.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILTIN_PROFILE } from "../src/config/schema.js";
import { silentLogger } from "../src/log.js";
import { parseVllmMetrics } from "../src/pods/vllm-metrics.js";
import { startPodFleet, type PodFleet } from "../src/podsim/fleet.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { startServing } from "../src/serve.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const profile = LatencyProfile.shipped(BUILTIN_PROFILE);

let fleet: PodFleet;
let reports: unknown[] = [];
let reportServer: Server;

beforeAll(async () => {
  reportServer = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      reports.push(JSON.parse(body));
      res.writeHead(200, { "content-type": "application/json" }).end('{"known":1,"unknown":0}');
    });
  });
  await new Promise<void>((r) => reportServer.listen(0, "127.0.0.1", r));
  const reportUrl = `http://127.0.0.1:${(reportServer.address() as AddressInfo).port}/v1/report`;
  fleet = await startPodFleet({
    pods: [
      { name: "p0", role: "prefill" },
      { name: "d0", role: "decode" },
      { name: "b0", role: "both" },
    ],
    reportUrl,
  });
});

afterAll(async () => {
  await fleet.close();
  reportServer.close();
});

const pod = (name: string) => fleet.pods.find((p) => p.spec.name === name)!;

async function post(name: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`http://${pod(name).address}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function metricsOf(name: string) {
  const text = await (await fetch(pod(name).metricsUrl)).text();
  const parsed = parseVllmMetrics(text, 0);
  if (!parsed.ok) throw new Error(parsed.message);
  return { text, metrics: parsed.metrics };
}

describe("completions", () => {
  it("answers a completion with max_tokens tokens, prefilled locally without a prefiller", async () => {
    const r = await post("d0", "/v1/completions", { prompt: "a".repeat(400), max_tokens: 5 }, { "x-request-id": "local-1" });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-pod-sim-decode")).toBe(pod("d0").address);
    expect(r.headers.get("x-pod-sim-prefill")).toBe(pod("d0").address);
    const body = (await r.json()) as { choices: { text: string; finish_reason: string }[]; usage: Record<string, number> };
    expect(body.usage).toEqual({ prompt_tokens: 100, completion_tokens: 5, total_tokens: 105 });
    expect(body.choices[0].text).toBe(" t1 t2 t3 t4 t5");
    expect(body.choices[0].finish_reason).toBe("length");
  });

  it("streams chat tokens one event per token, then usage and [DONE]", async () => {
    const r = await post("b0", "/v1/chat/completions", { messages: [{ role: "user", content: "hello there" }], max_tokens: 4, stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/event-stream");
    const events = (await r.text()).split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events.at(-1)).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { content?: string }; finish_reason: string | null }[]; usage?: unknown });
    expect(chunks.map((c) => c.choices[0].delta.content ?? "")).toEqual([" t1", " t2", " t3", " t4", ""]);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe("length");
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
  });

  it("sends the prompt to the named prefill pod first, then decodes (the prefill hop is real)", async () => {
    const before = pod("p0").prefilled;
    const r = await post("d0", "/v1/completions", { prompt: "b".repeat(8000), max_tokens: 3 }, { "x-prefiller-host-port": pod("p0").address, "x-request-id": "remote-1" });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-pod-sim-prefill")).toBe(pod("p0").address);
    expect(pod("p0").prefilled).toBe(before + 1);
    // The prefill pod counted the prompt and its time to the first token, at least the profile's prefill time.
    const { text, metrics } = await metricsOf("p0");
    expect(text).toMatch(/^vllm:prompt_tokens_total\{[^}]*\} (\d+)$/m);
    expect(metrics.ttft!.sum * 1000).toBeGreaterThanOrEqual(profile.prefillMs(2000) - 1);
  });

  it("takes at least the profile's time: prefill, then one decode step per token", async () => {
    const started = performance.now();
    const r = await post("b0", "/v1/completions", { prompt: "c".repeat(16_000), max_tokens: 8 });
    await r.json();
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(profile.prefillMs(4000) + 7 * profile.stepMs(1, 4000) - 2);
  });
});

describe("metrics", () => {
  it("speak vLLM's names, which headroom's scraper reads: queues, KV capacity and the latency histograms", async () => {
    const { text, metrics } = await metricsOf("d0");
    expect(metrics.waiting).toBe(0);
    expect(metrics.running).toBe(0);
    expect(metrics.kvCapacityTokens).toBe(Math.floor(profile.kvCapacityTokens(1, 0.9) / 16) * 16);
    expect(metrics.ttft!.count).toBeGreaterThanOrEqual(2);
    expect(metrics.tpot!.count).toBeGreaterThanOrEqual(2);
    for (const name of ["vllm:e2e_request_latency_seconds_bucket", "vllm:generation_tokens_total", "vllm:request_success_total"]) expect(text).toContain(name);
  });

  it("observe TPOT as vLLM does: every gap between tokens under the per-token names, each request's mean under the per-request name", async () => {
    const own = await startPodFleet({ pods: [{ name: "t0", role: "both" }] });
    try {
      const at = own.pods[0]!;
      const send = (maxTokens: number) =>
        fetch(`http://${at.address}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "e".repeat(400), max_tokens: maxTokens }) }).then((r) => r.json());
      await Promise.all([send(2), send(50), send(200), send(1)]);
      const text = await (await fetch(at.metricsUrl)).text();
      const count = (name: string) => Number(new RegExp(`^${name}_count\\{[^}]*\\} (\\S+)$`, "m").exec(text)?.[1]);
      const sum = (name: string) => Number(new RegExp(`^${name}_sum\\{[^}]*\\} (\\S+)$`, "m").exec(text)?.[1]);
      // 1 + 49 + 199 + 0 gaps; four requests, the one-token one observed as 0.
      expect(count("vllm:time_per_output_token_seconds")).toBe(249);
      expect(count("vllm:inter_token_latency_seconds")).toBe(249);
      expect(sum("vllm:inter_token_latency_seconds")).toBe(sum("vllm:time_per_output_token_seconds"));
      expect(count("vllm:request_time_per_output_token_seconds")).toBe(4);
      // headroom reads the per-token histogram: the per-request one holds the one-token request's 0.
      const parsed = parseVllmMetrics(text, 0);
      expect(parsed.ok && parsed.metrics.tpot!.count).toBe(249);
    } finally {
      await own.close();
    }
  });

  it("show every latency histogram before any request, at zero, as vLLM does", async () => {
    const own = await startPodFleet({ pods: [{ name: "z0", role: "decode" }] });
    try {
      const parsed = parseVllmMetrics(await (await fetch(own.pods[0]!.metricsUrl)).text(), 0);
      expect(parsed.ok && parsed.metrics.tpot).toMatchObject({ count: 0, sum: 0 });
      expect(parsed.ok && parsed.metrics.ttft).toMatchObject({ count: 0, sum: 0 });
    } finally {
      await own.close();
    }
  });

  it("show a request in flight as running", async () => {
    const pending = post("b0", "/v1/completions", { prompt: "d".repeat(400), max_tokens: 150 });
    let running = 0;
    for (let i = 0; i < 50 && running === 0; i++) {
      running = (await metricsOf("b0")).metrics.running;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(running).toBe(1);
    await (await pending).json();
    expect((await metricsOf("b0")).metrics.running).toBe(0);
  });
});

describe("reports", () => {
  it("a decode pod given a report URL reports each finished request with its request id and latencies", async () => {
    reports = [];
    await (await post("d0", "/v1/completions", { prompt: "e".repeat(40), max_tokens: 3 }, { "x-request-id": "report-me" })).json();
    for (let i = 0; i < 50 && reports.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ requestId: "report-me", ok: true, inputTokens: 10, outputTokens: 3, decode: pod("d0").address });
    const r = reports[0] as { ttftMs: number; tpotMs: number };
    expect(r.ttftMs).toBeGreaterThan(0);
    expect(r.tpotMs).toBeGreaterThan(0);
  });
});

describe("bad requests", () => {
  const cases: [string, string, string, unknown, Record<string, string>, number, RegExp][] = [
    ["malformed JSON", "d0", "/v1/completions", "{not json", {}, 400, /not JSON/],
    ["no prompt", "d0", "/v1/completions", { max_tokens: 3 }, {}, 400, /prompt must be/],
    ["a zero max_tokens", "d0", "/v1/completions", { prompt: "x", max_tokens: 0 }, {}, 400, /max_tokens/],
    ["a fractional max_tokens", "d0", "/v1/completions", { prompt: "x", max_tokens: 1.5 }, {}, 400, /max_tokens/],
    ["chat without messages", "d0", "/v1/chat/completions", { messages: [] }, {}, 400, /messages/],
    ["a non-boolean stream", "d0", "/v1/completions", { prompt: "x", stream: "yes" }, {}, 400, /stream/],
    ["a full request to a prefill pod", "p0", "/v1/completions", { prompt: "x" }, {}, 400, /prefill pod/],
    ["a prefill request to a decode pod", "d0", "/v1/completions", { prompt: "x", kv_transfer_params: { do_remote_decode: true } }, {}, 400, /decode pod/],
    ["a prefiller that does not answer", "d0", "/v1/completions", { prompt: "x" }, { "x-prefiller-host-port": "127.0.0.1:1" }, 502, /did not answer/],
  ];
  it.each(cases)("%s gets its status and an OpenAI-shaped error", async (_label, name, path, body, headers, status, message) => {
    const r = await post(name, path, body, headers);
    const payload = (await r.json()) as { error: { message: string; code: number } };
    expect(r.status).toBe(status);
    expect(payload.error.message).toMatch(message);
    expect(payload.error.code).toBe(status);
  });

  it("oversized bodies get 413, unknown paths 404, wrong methods 405, and the pod keeps serving", async () => {
    expect((await post("d0", "/v1/completions", JSON.stringify({ prompt: "x".repeat(2 * 1024 * 1024) }))).status).toBe(413);
    expect((await fetch(`http://${pod("d0").address}/v2/nothing`)).status).toBe(404);
    expect((await fetch(`http://${pod("d0").address}/v1/completions`)).status).toBe(405);
    const r = await post("d0", "/v1/completions", { prompt: "still here", max_tokens: 1 });
    expect(r.status).toBe(200);
    await r.json();
  });
});

describe("headroom pod-sim", () => {
  it("serves the pods it is given, prints one JSON line each, and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [join(root, "dist/src/cli.js"), "pod-sim", "--pod", "a:prefill", "--pod", "b:decode:0:2", "--print-config"], { stdio: ["ignore", "pipe", "pipe"] });
    const lines = createInterface({ input: child.stdout! });
    const pods: { name: string; role: string; address: string }[] = [];
    for await (const line of lines) {
      pods.push(JSON.parse(line));
      if (pods.length === 2) break;
    }
    expect(pods.map((p) => [p.name, p.role])).toEqual([
      ["a", "prefill"],
      ["b", "decode"],
    ]);
    const r = await fetch(`http://${pods[1].address}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-prefiller-host-port": pods[0].address },
      body: JSON.stringify({ prompt: "hi", max_tokens: 2 }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-pod-sim-prefill")).toBe(pods[0].address);
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    expect(code).toBe(0);
  });

  it("refuses a malformed pod spec with exit 2", async () => {
    const child = spawn(process.execPath, [join(root, "dist/src/cli.js"), "pod-sim", "--pod", "a:router"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (c) => (stderr += c));
    const [code] = await once(child, "exit");
    expect(code).toBe(2);
    expect(stderr).toContain("the role must be prefill, decode or both");
  });
});

describe("the embedded demo", () => {
  it("starts the simulated pods, scrapes them, and learns of completions through their reports", async () => {
    let banner = "";
    const serving = await startServing({ port: 0, out: { write: (t: string) => (banner += t) }, logger: silentLogger });
    try {
      const base = `http://127.0.0.1:${serving.port}`;
      expect(banner).toContain("the embedded demo");
      expect(banner).toContain(`kernel:   ${serving.config.workers.threads} worker thread`);
      expect(serving.fleet!.pods).toHaveLength(6);
      // Every pod is scraped: fresh within a few scrape intervals.
      type StatePod = { address: string; freshness: string };
      let pods: StatePod[] = [];
      for (let i = 0; i < 100; i++) {
        const state = (await (await fetch(`${base}/v1/state`)).json()) as { pools: { pods: StatePod[] }[] };
        pods = state.pools.flatMap((p) => p.pods);
        if (pods.length === 6 && pods.every((p) => p.freshness === "fresh")) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(pods.map((p) => p.freshness)).toEqual(Array(6).fill("fresh"));
      // A gateway's two steps: pick, then the completion to the chosen decode pod with the chosen prefill pod.
      const pick = await fetch(`${base}/v1/gateway/pick`, { headers: { "x-slo-level": "medium", "x-prompt-tokens": "500" } });
      expect(pick.status).toBe(200);
      const decode = pick.headers.get("x-gateway-destination-endpoint")!;
      const prefill = pick.headers.get("x-prefiller-host-port")!;
      const requestId = pick.headers.get("x-headroom-request-id")!;
      const done = await fetch(`http://${decode}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-prefiller-host-port": prefill, "x-request-id": requestId },
        body: JSON.stringify({ prompt: "f".repeat(2000), max_tokens: 4 }),
      });
      expect(done.status).toBe(200);
      expect(done.headers.get("x-pod-sim-decode")).toBe(decode);
      expect(done.headers.get("x-pod-sim-prefill")).toBe(prefill);
      let known = 0;
      for (let i = 0; i < 100 && known === 0; i++) {
        const m = /^headroom_reports_total\{result="ok"\} (\d+)/m.exec(await (await fetch(`${base}/metrics`)).text());
        known = Number(m?.[1] ?? 0);
        if (known === 0) await new Promise((r) => setTimeout(r, 20));
      }
      expect(known).toBe(1);
      // The report is compared with what the pick predicted.
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^headroom_latency_actual_to_predicted_ratio_count\{pool="medium",quantity="ttft"\} 1$/m);
      expect(metrics).toMatch(/^headroom_latency_actual_to_predicted_ratio_count\{pool="medium",quantity="tpot"\} 1$/m);
    } finally {
      await serving.close();
    }
  });
});
