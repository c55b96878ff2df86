// The assembled pod picture (SPEC.md §4–5) on real loopback metrics endpoints: configured pods wait for
// their first scrape, scraped state reaches the snapshot, a pod that stops answering leaves and comes
// back, scrapes and reports release in-flight load, and reports teach the online predictor.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { realClock } from "../src/clock.js";
import { parseConfig } from "../src/config/load.js";
import { Cluster, learningSamples } from "../src/engine/cluster.js";
import { ConfigError } from "../src/errors.js";
import { TwinKernel } from "../src/kernel/twin.js";
import { ROLE_ELIGIBLE } from "../src/kernel/types.js";
import { MemoryLogger } from "../src/log.js";
import { FakeKubeApi, NAMESPACE, pod } from "./fixtures/kube-api.js";
import { request } from "./fixtures/pools.js";
import { until } from "./fixtures/wait.js";

/** A vLLM-shaped metrics endpoint whose numbers and health the test sets. */
class FakeVllm {
  waiting = 0;
  running = 0;
  kvUsage = 0.1;
  healthy = true;
  private constructor(private readonly server: Server) {}

  static async start(): Promise<FakeVllm> {
    let fake: FakeVllm | null = null;
    const server = createServer((_req, res) => {
      const f = fake!;
      if (!f.healthy) {
        res.writeHead(500).end("engine dead");
        return;
      }
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(
        [
          "# TYPE vllm:num_requests_waiting gauge",
          `vllm:num_requests_waiting{model_name="m"} ${f.waiting}`,
          "# TYPE vllm:num_requests_running gauge",
          `vllm:num_requests_running{model_name="m"} ${f.running}`,
          "# TYPE vllm:kv_cache_usage_perc gauge",
          `vllm:kv_cache_usage_perc{model_name="m"} ${f.kvUsage}`,
          "",
        ].join("\n"),
      );
    });
    fake = new FakeVllm(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return fake;
  }

  get metricsUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/metrics`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const closers: (() => unknown)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});


async function cluster(yaml: string, env: Record<string, string> = {}) {
  const logger = new MemoryLogger();
  const registry = new Registry();
  const c = new Cluster({ config: parseConfig(yaml).config, clock: realClock, logger, registry, env });
  closers.push(() => c.close());
  return { cluster: c, logger, registry };
}

describe("scraped pods", () => {
  it("join the candidates after their first scrape, carry its numbers, leave when it fails and come back", async () => {
    const prefill = await FakeVllm.start();
    const decode = await FakeVllm.start();
    closers.push(() => prefill.close(), () => decode.close());
    decode.running = 40;
    decode.kvUsage = 0.5;
    const { cluster: c } = await cluster(`
pods: { scrapeIntervalMs: 20, scrapeTimeoutMs: 200, staleAfterMs: 2000 }
predictors: { refreshMs: 20 }
pools:
  - sloLevel: medium
    pods:
      - { address: "127.0.0.1:9001", role: prefill, metricsUrl: "${prefill.metricsUrl}" }
      - { address: "127.0.0.1:9002", role: decode, metricsUrl: "${decode.metricsUrl}" }
`);
    c.start();
    const pool = c.pools.get("medium")!;
    const eligible = () => [...(pool.snapshot?.roles ?? [])].map((r) => (r & ROLE_ELIGIBLE) !== 0);
    expect(eligible()).toEqual([false, false]);
    await until(() => eligible().every(Boolean), "both pods are candidates", 5000);
    const features = pool.latestPods!.features[1];
    expect(features.running).toBe(40);
    expect(features.kvTokensUsed).toBeCloseTo(0.5 * features.kvCapacityTokens, 6);

    decode.healthy = false;
    await until(() => eligible()[1] === false, "the failing pod leaves", 5000);
    expect(pool.latestPods!.statuses[1].excludedBecause).toMatch(/scrapes failed \(http_500/);
    decode.healthy = true;
    await until(() => eligible()[1] === true, "it returns", 5000);
  });
});

describe("Kubernetes discovery", () => {
  it("discovered pods join their pool's snapshot and leave it when deleted", async () => {
    const api = new FakeKubeApi();
    api.pods.set("p0", pod("p0", { role: "prefill", ip: "10.1.0.1", pool: "medium" }));
    api.pods.set("d0", pod("d0", { role: "decode", ip: "10.1.0.2", pool: "medium" }));
    await api.listen();
    closers.push(() => api.close());
    const logger = new MemoryLogger();
    const config = parseConfig(`
predictors: { refreshMs: 20 }
pods:
  kubernetes: { namespace: ${NAMESPACE}, port: 8000, metricsPath: "", selectors: { medium: "app=vllm,pool=medium" } }
`).config;
    const c = new Cluster({ config, clock: realClock, logger, registry: new Registry(), kubeConfig: api.kubeConfig() });
    closers.push(() => c.close());
    c.start();
    const pool = c.pools.get("medium")!;
    await until(() => pool.latestPods?.addresses.length === 2, "both pods are discovered", 5000);
    expect(pool.latestPods!.addresses).toEqual(["10.1.0.1:8000", "10.1.0.2:8000"]);
    expect([...pool.snapshot!.roles].every((r) => (r & ROLE_ELIGIBLE) !== 0)).toBe(true);
    api.remove("d0");
    await until(() => pool.latestPods?.addresses.length === 1, "the deleted pod leaves", 5000);
  });
});

describe("in-flight load and reports", () => {
  it("a pick loads its pods until a scrape late enough counts it; its report teaches the online predictor", async () => {
    const prefill = await FakeVllm.start();
    const decode = await FakeVllm.start();
    closers.push(() => prefill.close(), () => decode.close());
    const { cluster: c, registry } = await cluster(`
pods: { scrapeIntervalMs: 20, scrapeTimeoutMs: 200, staleAfterMs: 2000, reflectDelayMs: 100 }
predictors: { refreshMs: 20, prefillTtft: online, decodeTpot: online }
pools:
  - sloLevel: medium
    pods:
      - { address: "127.0.0.1:9001", role: prefill, metricsUrl: "${prefill.metricsUrl}" }
      - { address: "127.0.0.1:9002", role: decode, metricsUrl: "${decode.metricsUrl}" }
`);
    c.start();
    const pool = c.pools.get("medium")!;
    await until(() => [...(pool.snapshot?.roles ?? [])].every((r) => (r & ROLE_ELIGIBLE) !== 0), "both pods are candidates", 5000);
    const twin = new TwinKernel(c.options.config.optimizer, c.options.config.topology);
    twin.loadSnapshot(pool.snapshot!);
    const req = request({ inputTokens: 2000, outputTokens: 100, sloTtftMs: 600, sloTpotMs: 50, seed: 7 });
    const [result] = twin.pick([req]);
    expect(result.prefill).toBe(0);
    expect(pool.recordPick("req-1", req, result)).not.toBeNull();
    expect(c.inflight.podLoad("127.0.0.1:9002").decodeRequests).toBe(1);
    await until(() => c.inflight.podLoad("127.0.0.1:9002").decodeRequests === 0, "a scrape counts the pick", 5000);
    expect(c.inflight.has("req-1")).toBe(true);

    const before = c.online!.stats("127.0.0.1:9002");
    expect(c.report({ requestId: "req-1", ok: true, ttftMs: 2 * result.ttftMs, tpotMs: 3 * result.tpotMs, inputTokens: 2000, outputTokens: 100 })).toBe(pool.name);
    expect(c.report({ requestId: "req-1", ok: true, ttftMs: 100 })).toBeUndefined();
    const after = c.online!.stats("127.0.0.1:9002");
    expect(JSON.stringify(after)).not.toBe(JSON.stringify(before));
    const reports = await registry.getSingleMetric("headroom_reports_total")!.get();
    expect(Object.fromEntries(reports.values.map((v) => [v.labels.result, v.value]))).toEqual({ ok: 1, unknown: 1 });
  });

  it("a local prefill that runs as the profile says leaves the online correction at 1, whatever the pod's prefill queue", async () => {
    const pod = await FakeVllm.start();
    closers.push(() => pod.close());
    // Running sequences give a `both` pod a prefill queue (half a typical prefill), which a local
    // prefill never waits behind: learned against queue + compute, an exact profile fell to 0.67.
    pod.running = 8;
    const { cluster: c } = await cluster(`
pods: { scrapeIntervalMs: 20, scrapeTimeoutMs: 200, staleAfterMs: 2000 }
predictors: { refreshMs: 20, prefillTtft: online }
pools:
  - sloLevel: medium
    pods:
      - { address: "127.0.0.1:9001", role: both, metricsUrl: "${pod.metricsUrl}" }
`);
    c.start();
    const pool = c.pools.get("medium")!;
    await until(() => pool.latestPods?.features[0]?.running === 8, "the pod's scrape is in the snapshot", 5000);
    const twin = new TwinKernel(c.options.config.optimizer, c.options.config.topology);
    for (let k = 0; k < 300; k++) {
      twin.loadSnapshot(pool.snapshot!);
      const req = request({ inputTokens: 200, outputTokens: 100, sloTtftMs: 600, sloTpotMs: 50, seed: k });
      const [result] = twin.pick([req]);
      expect(result.prefill).toBe(-1);
      const features = pool.features([...c.pods.podsOf("medium")])[0];
      expect(c.profile.prefillQueueMs(features)).toBeGreaterThan(0);
      const id = pool.recordPick(`r${k}`, req, result)!;
      c.report({ requestId: id, ok: true, ttftMs: result.decodeTtftMs + result.transferMs + c.profile.prefillMs(features, 200) });
    }
    const features = pool.features([...c.pods.podsOf("medium")])[0];
    expect(c.online!.stats().reportSamples).toBe(300);
    expect(c.online!.correction(features, "prefill-ttft", 200)).toBeCloseTo(1, 1);
  });

  it("takes what a measured TTFT leaves after the predicted wait and transfer as the prefill time", () => {
    const predicted = { prefillTtftMs: 30, decodeTtftMs: 10, transferMs: 5, ttftMs: 45, tpotMs: 8 };
    expect(learningSamples(predicted, { requestId: "r", ok: true, ttftMs: 85, tpotMs: 12 })).toEqual([
      { quantity: "prefill-ttft", actualMs: 70 },
      { quantity: "decode-tpot", actualMs: 12 },
    ]);
    expect(learningSamples(predicted, { requestId: "r", ok: true, ttftMs: 3 })).toEqual([]);
  });
});

describe("configuration", () => {
  it("a remote predictor without its URLs is refused; URLs without remote are ignored with a warning", async () => {
    expect(() => new Cluster({ config: parseConfig("predictors: { decodeTpot: remote }").config, clock: realClock, logger: new MemoryLogger(), registry: new Registry(), env: {} })).toThrow(ConfigError);
    const { logger } = await cluster("{}", { PREFILL_TTFT_PREDICTION_URL: "http://127.0.0.1:1", PREFILL_TTFT_TRAINING_URL: "http://127.0.0.1:1" });
    expect(logger.lines.some((l) => l.level === "warn" && /PREFILL_TTFT/.test(l.message))).toBe(true);
  });

  it("a profile file that cannot be read is a ConfigError naming it", () => {
    const config = parseConfig("predictors: { profiles: { a100: /nonexistent/a100.csv } }").config;
    expect(() => new Cluster({ config, clock: realClock, logger: new MemoryLogger(), registry: new Registry() })).toThrow(/a100.*\/nonexistent\/a100\.csv/);
  });
});
