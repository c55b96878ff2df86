// Kubernetes discovery against a loopback server that speaks the pods list/watch API (no cluster):
// the first set, watch events, dropped and failing watches with their recovery, 410 Gone, resync,
// llm-d's role values, role labels that are missing or wrong, and close().

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, describe, expect, test } from "vitest";
import { realClock } from "../src/clock.js";
import { MemoryLogger } from "../src/log.js";
import { KubernetesDiscovery, ROLE_LABEL, type KubernetesDiscoveryOptions } from "../src/pods/kubernetes.js";
import type { PodSpec } from "../src/pods/types.js";
import { FakeKubeApi, NAMESPACE, pod, type PodJson } from "./fixtures/kube-api.js";
import { sleep, until } from "./fixtures/wait.js";

const apis: FakeKubeApi[] = [];
const discoveries: KubernetesDiscovery[] = [];

afterEach(async () => {
  for (const d of discoveries.splice(0)) d.close();
  for (const api of apis.splice(0)) await api.close();
});

async function fakeApi(...pods: PodJson[]): Promise<FakeKubeApi> {
  const api = new FakeKubeApi();
  for (const p of pods) api.pods.set(p.metadata.name, p);
  await api.listen();
  apis.push(api);
  return api;
}

function discover(api: FakeKubeApi, overrides: Partial<KubernetesDiscoveryOptions> = {}) {
  const calls: { pool: string; pods: PodSpec[] }[] = [];
  const logger = new MemoryLogger();
  const registry = new Registry();
  const discovery = new KubernetesDiscovery(api.kubeConfig(), {
    namespace: NAMESPACE,
    port: 8000,
    metricsPath: "/metrics",
    resyncMs: 60_000,
    selectors: { high: "app=vllm,pool=high" },
    clock: realClock,
    logger,
    registry,
    onPods: (pool, pods) => calls.push({ pool, pods }),
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    ...overrides,
  });
  discoveries.push(discovery);
  discovery.start();
  const latest = (pool = "high") => calls.filter((c) => c.pool === pool).at(-1)?.pods;
  const addresses = (pool = "high") => latest(pool)?.map((p) => p.address);
  const errors = async () => {
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === "headroom_kubernetes_watch_errors_total");
    return Object.fromEntries((metric?.values ?? []).map((v) => [`${v.labels.pool}/${v.labels.cause}`, v.value]));
  };
  const warnings = () => logger.lines.filter((l) => l.level === "warn").map((l) => `${l.message} [${l.fields?.cause}]`);
  return { discovery, calls, logger, latest, addresses, errors, warnings };
}

describe("the pods of a pool", () => {
  test("the first list gives every ready pod with an IP, as PodSpecs; other pools get theirs", async () => {
    const api = await fakeApi(
      pod("p1", { ip: "10.0.0.1", role: "prefill", node: "gpu-node-1", zone: "us-east-1a" }),
      pod("d1", { ip: "10.0.0.2", role: "decode", node: "gpu-node-2" }),
      pod("b1", { ip: "10.0.0.3", role: "both" }),
      pod("pd1", { ip: "10.0.0.4", role: "prefill-decode" }),
      pod("starting", { ip: "10.0.0.5", ready: false }),
      pod("unscheduled", { ip: null }),
      pod("l1", { ip: "10.0.1.1", pool: "low" }),
      pod("v6", { ip: "fd00::7", pool: "low", role: "both" }),
    );
    const d = discover(api, { selectors: { high: "app=vllm,pool=high", low: "app=vllm,pool=low" } });
    await until(() => d.latest("high") !== undefined && d.latest("low") !== undefined);
    expect(d.latest("high")).toEqual([
      { address: "10.0.0.1:8000", pool: "high", role: "prefill", node: "gpu-node-1", rack: "us-east-1a", metricsUrl: "http://10.0.0.1:8000/metrics" },
      { address: "10.0.0.2:8000", pool: "high", role: "decode", node: "gpu-node-2", metricsUrl: "http://10.0.0.2:8000/metrics" },
      { address: "10.0.0.3:8000", pool: "high", role: "both", metricsUrl: "http://10.0.0.3:8000/metrics" },
      { address: "10.0.0.4:8000", pool: "high", role: "both", metricsUrl: "http://10.0.0.4:8000/metrics" },
    ]);
    expect(d.addresses("low")).toEqual(["10.0.1.1:8000", "[fd00::7]:8000"]);
    expect(d.latest("low")![1]!.metricsUrl).toBe("http://[fd00::7]:8000/metrics");
    expect(d.calls).toHaveLength(2);
    expect(api.requests.filter((r) => r.kind === "list").map((r) => r.query.get("labelSelector")).sort()).toEqual([
      "app=vllm,pool=high",
      "app=vllm,pool=low",
    ]);
  });

  test("an empty pool is reported once, and metricsPath \"\" leaves pods unscraped", async () => {
    const api = await fakeApi();
    const d = discover(api, { metricsPath: "" });
    await until(() => d.calls.length === 1);
    expect(d.latest()).toEqual([]);
    api.add(pod("d1", { ip: "10.0.0.9" }));
    await until(() => d.calls.length === 2);
    expect(d.latest()).toEqual([{ address: "10.0.0.9:8000", pool: "high", role: "decode" }]);
  });
});

describe("watch events", () => {
  test("added, no longer ready, relabelled, terminating and deleted pods; no call when nothing changed", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }), pod("b", { ip: "10.0.0.2" }));
    const d = discover(api);
    await until(() => d.calls.length === 1 && api.openWatches === 1);
    expect(api.requests.find((r) => r.kind === "watch")!.query.get("resourceVersion")).toBe("100");

    api.add(pod("c", { ip: "10.0.0.3", ready: false }));
    api.modify("c", (p) => (p.status.conditions[1]!.status = "True"));
    await until(() => d.calls.length === 2);
    expect(d.addresses()).toEqual(["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"]);

    api.modify("a", (p) => (p.status.conditions[1]!.status = "False"));
    await until(() => d.calls.length === 3);
    expect(d.addresses()).toEqual(["10.0.0.2:8000", "10.0.0.3:8000"]);

    api.modify("b", (p) => (p.metadata.labels[ROLE_LABEL] = "prefill"));
    await until(() => d.calls.length === 4);
    expect(d.latest()!.find((p) => p.address === "10.0.0.2:8000")!.role).toBe("prefill");

    api.modify("b", (p) => (p.metadata.deletionTimestamp = "2025-07-19T10:00:00Z"));
    await until(() => d.calls.length === 5);
    expect(d.latest()!.find((p) => p.address === "10.0.0.2:8000")!.draining).toBe(true);

    // An annotation-like change that does not touch the PodSpec: no call.
    api.modify("c", (p) => (p.metadata.labels.unrelated = "x"));
    api.remove("b");
    await until(() => d.calls.length === 6);
    expect(d.addresses()).toEqual(["10.0.0.3:8000"]);
    await sleep(50);
    expect(d.calls).toHaveLength(6);
    expect(await d.errors()).toEqual({});
  });

  test("llm-d's role values take the headroom role of the same work; a pod without the label is a decode pod, as llm-d's decode filter takes it", async () => {
    const roles = ["prefill", "encode-prefill", "decode", "both", "prefill-decode", "encode-prefill-decode", null] as const;
    const api = await fakeApi(...roles.map((role, i) => pod(`pod-${i}`, { ip: `10.0.0.${i + 1}`, role })));
    const d = discover(api);
    await until(() => d.calls.length === 1);
    expect(d.latest()!.map((p) => p.role)).toEqual(["prefill", "prefill", "decode", "both", "both", "both", "decode"]);
    expect(d.warnings()).toEqual([]);
  });

  test("pods whose role label names no prefill or decode role are skipped and warned about once each, until fixed", async () => {
    const api = await fakeApi(pod("ok", { ip: "10.0.0.1" }), pod("gpu", { ip: "10.0.0.2", role: "gpu" }), pod("encoder", { ip: "10.0.0.3", role: "encode" }));
    const d = discover(api);
    await until(() => d.calls.length === 1 && api.openWatches === 1);
    expect(d.addresses()).toEqual(["10.0.0.1:8000"]);
    api.modify("gpu", (p) => (p.metadata.labels.touched = "1"));
    api.modify("ok", (p) => (p.metadata.labels[ROLE_LABEL] = "constructor"));
    await until(() => d.calls.length === 2);
    expect(d.addresses()).toEqual([]);
    const skipped = d.logger.lines.filter((l) => l.message === "kubernetes pod skipped: its role label names no prefill or decode role");
    expect(skipped.map((l) => [l.fields?.pod, l.fields?.label, l.fields?.value])).toEqual([
      ["llm/gpu", ROLE_LABEL, "gpu"],
      ["llm/encoder", ROLE_LABEL, "encode"],
      ["llm/ok", ROLE_LABEL, "constructor"],
    ]);

    api.modify("gpu", (p) => (p.metadata.labels[ROLE_LABEL] = "decode"));
    await until(() => d.calls.length === 3);
    expect(d.addresses()).toEqual(["10.0.0.2:8000"]);
    expect(d.logger.lines.filter((l) => l.message === "kubernetes pod no longer skipped").map((l) => l.fields?.pod)).toEqual(["llm/gpu"]);
    expect(await d.errors()).toEqual({});
  });
});

describe("failures and recovery", () => {
  test("a dropped watch is counted and logged once, relisted with what changed meanwhile, and its recovery logged", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    const d = discover(api);
    await until(() => d.calls.length === 1 && api.openWatches === 1);
    api.dropWatches();
    api.modifySilently("a", (p) => (p.metadata.labels[ROLE_LABEL] = "prefill"));
    await until(() => d.calls.length === 2);
    expect(d.latest()![0]!.role).toBe("prefill");
    expect(api.count("list")).toBe(2);
    expect(await d.errors()).toEqual({ "high/connection": 1 });
    expect(d.warnings()).toEqual(["kubernetes pod discovery failed [connection]"]);
    expect(d.logger.lines.filter((l) => l.message === "kubernetes pod discovery recovered")).toHaveLength(1);
    await until(() => api.openWatches === 1);
    api.add(pod("b", { ip: "10.0.0.2" }));
    await until(() => d.calls.length === 3);
  });

  test("a failing API server is retried with growing pauses and logged once per cause", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    api.failures.push({ kind: "list", status: 500 }, { kind: "list", status: 500 }, { kind: "list", status: 503 }, { kind: "list", status: 403 });
    const startedMs = performance.now();
    const d = discover(api);
    await until(() => d.calls.length === 1);
    // Pauses of 50, 100, 200 and 200 ms (the cap) before the fifth list.
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(500);
    expect(api.count("list")).toBe(5);
    expect(await d.errors()).toEqual({ "high/http_5xx": 3, "high/http_4xx": 1 });
    expect(d.warnings()).toEqual([
      "kubernetes pod discovery failed [http_500]",
      "kubernetes pod discovery failed [http_503]",
      "kubernetes pod discovery failed [http_403]",
    ]);
    expect(d.logger.lines.filter((l) => l.message === "kubernetes pod discovery recovered")).toHaveLength(1);
  });

  test("a watch the server takes and never answers fails after requestTimeoutMs and is relisted, not left blind until the resync", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    api.hangWatches = 1;
    const d = discover(api, { requestTimeoutMs: 200 });
    await until(() => d.calls.length === 1);
    await expect.poll(async () => (await d.errors())["high/timeout"], { timeout: 3000 }).toBe(1);
    api.add(pod("b", { ip: "10.0.0.2" }));
    await until(() => d.addresses()?.length === 2);
    expect(api.count("list")).toBe(2);
    expect(d.warnings()).toEqual(["kubernetes pod discovery failed [timeout]"]);
  });

  test("410 Gone, as an answer or as an event in the stream, leads to a fresh list", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    api.failures.push({ kind: "watch", status: 410 });
    const d = discover(api);
    await until(() => api.openWatches === 1);
    expect(api.count("list")).toBe(2);
    api.sendWatchError(410);
    await until(() => api.count("list") === 3 && api.openWatches === 1);
    expect(await d.errors()).toEqual({ "high/gone": 2 });
    expect(d.calls).toHaveLength(1);
  });

  test("a watch the server ends cleanly is resumed from its resourceVersion, without a relist or an error", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    const d = discover(api);
    await until(() => d.calls.length === 1 && api.openWatches === 1);
    api.add(pod("b", { ip: "10.0.0.2" }));
    await until(() => d.calls.length === 2);
    api.endWatches();
    api.add(pod("c", { ip: "10.0.0.3" }));
    await until(() => d.calls.length === 3);
    expect(d.addresses()).toEqual(["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"]);
    expect(api.count("list")).toBe(1);
    expect(api.requests.filter((r) => r.kind === "watch").map((r) => r.query.get("resourceVersion"))).toEqual(["100", "101"]);
    expect(await d.errors()).toEqual({});
  });

  test("resync relists every resyncMs and catches changes no event announced", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    const d = discover(api, { resyncMs: 150 });
    await until(() => d.calls.length === 1);
    api.modifySilently("a", (p) => (p.status.podIP = "10.0.0.77"));
    await until(() => d.calls.length === 2);
    expect(d.addresses()).toEqual(["10.0.0.77:8000"]);
    await until(() => api.count("list") >= 4);
    expect(d.calls).toHaveLength(2);
    expect(await d.errors()).toEqual({});
  });
});

describe("lifecycle", () => {
  test("close() ends the watch and the timers; nothing is reported after", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    const d = discover(api, { resyncMs: 100 });
    await until(() => api.openWatches === 1);
    d.discovery.close();
    await until(() => api.openWatches === 0);
    const requests = api.requests.length;
    api.add(pod("b", { ip: "10.0.0.2" }));
    await sleep(250);
    expect(api.requests.length).toBe(requests);
    expect(d.calls).toHaveLength(1);
  });

  test("close() during the first list drops its answer", async () => {
    const api = await fakeApi(pod("a", { ip: "10.0.0.1" }));
    const d = discover(api);
    d.discovery.close();
    await sleep(100);
    expect(d.calls).toHaveLength(0);
    expect(api.openWatches).toBe(0);
  });

  test("the default KubeConfig is kubectl's ($KUBECONFIG here)", () => {
    const dir = mkdtempSync(join(tmpdir(), "headroom-kube-"));
    const file = join(dir, "config");
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]",
        "users: [{name: u, user: {token: t}}]",
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: llm}}]",
        "current-context: x",
      ].join("\n"),
    );
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = file;
    try {
      expect(KubernetesDiscovery.defaultKubeConfig().getCurrentCluster()?.server).toBe("https://127.0.0.1:6443");
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
      rmSync(dir, { recursive: true });
    }
  });
});
