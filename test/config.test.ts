// Configuration: defaults, every option validated with the field and the value named, strictness.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { stringify } from "yaml";
import { defaultConfig, loadConfigFile, parseConfig } from "../src/config/load.js";
import { DEFAULTS } from "../src/config/schema.js";
import { ConfigError } from "../src/errors.js";
import { problemsOf } from "./fixtures/config.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const fixtures = join(root, "test/fixtures/config");


/** A config with one pool carrying one pod, so pool and pod fields have somewhere to go. */
function base(): Record<string, unknown> {
  return {
    pools: [{ sloLevel: "high", pods: [{ address: "10.0.0.1:8000", role: "both" }] }],
    pods: { kubernetes: { namespace: "llm-d", selectors: { high: "app=vllm" } } },
  };
}

function setPath(doc: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const keys = path.split(/\.|\[(\d+)\]/).filter((k) => k !== undefined && k !== "");
  let node = doc as Record<string | number, unknown>;
  keys.slice(0, -1).forEach((key, i) => {
    if (node[key] === undefined) node[key] = /^\d+$/.test(keys[i + 1]!) ? [] : {};
    node = node[key] as Record<string | number, unknown>;
  });
  node[keys[keys.length - 1]!] = value;
  return doc;
}

/** How a problem line shows a value: strings quoted, structures as JSON, a URL's user and password as `***`. */
const shown = (v: unknown) => (typeof v === "string" || typeof v === "object" ? JSON.stringify(v) : String(v)).replace(/(:\/\/)[^/@]*@/g, "$1***@");

describe("defaults", () => {
  test("an empty file, a comment-only file and empty sections give the defaults", () => {
    const config = defaultConfig();
    expect(parseConfig("").config).toEqual(config);
    expect(parseConfig("# nothing here\n").config).toEqual(config);
    expect(parseConfig("optimizer:\ntopology:\n  bandwidthGBps:\npools:\n").config).toEqual(config);
    expect(parseConfig("").warnings).toEqual([]);
  });

  test("the SPEC's defaults", () => {
    const c = defaultConfig();
    expect(c.optimizer).toEqual({
      ttftWeight: 0.8,
      tpotWeight: 0.2,
      transferOverheadMs: 5.0,
      sloBufferFactor: 0.9,
      negativeHeadroomProb: 0.01,
      headroomStrategy: "most",
      localPrefill: "threshold",
      pdThreshold: 256,
      fallbacks: 2,
      shedSheddable: true,
    });
    expect(c.topology).toEqual({ kvBytesPerToken: 0, bandwidthGBps: { node: 450, rack: 50, cross: 12.5 } });
    expect(c.pods.scrapeIntervalMs).toBe(100);
    expect(c.pods.reflectDelayMs).toBe(200);
    expect(c.pods.inflightTtlFactor).toBe(2);
    expect(c.predictors.refreshMs).toBe(100);
    expect(c.predictors.remote.gridPoints).toBe(4);
    expect(c.cluster.gpuBudget).toBe(8);
    expect(c.workers.batchCapacity).toBe(256);
    expect(c.server).toEqual(DEFAULTS.server);
    expect(c.workers).toEqual(DEFAULTS.workers);
  });

  test("three pools as in SPEC §6, with no pods, whose GPU maxima add up to the budget", () => {
    const rows = defaultConfig().pools.map((p) => [
      p.name,
      p.sloLevel,
      p.sloPriority,
      p.targets.ttftMs,
      p.targets.tpotMs,
      p.tp,
      p.maxGpus,
      p.gpuMemoryUtilization,
      p.planner.scaleUpThreshold,
      p.planner.bufferRatio,
      p.planner.percentile,
      p.planner.violationsAllowed,
      p.planner.loadPredictor,
      p.planner.adjustmentIntervalMs,
      p.pods.length,
    ]);
    expect(rows).toEqual([
      ["high", "high", 1, 300, 30, 2, 4, 0.95, 0.5, 0.8, 95, 0.05, "arima", 30000, 0],
      ["medium", "medium", 2, 600, 50, 1, 3, 0.9, 0.7, 0.85, 90, 0.1, "arima", 30000, 0],
      ["low", "low", 3, 2000, 100, 1, 1, 0.85, 0.9, 0.95, 80, 0.2, "constant", 30000, 0],
    ]);
    const high = defaultConfig().pools[0]!.planner;
    expect([high.proactive, high.burstProtection, high.costOptimization]).toEqual([true, true, false]);
    const low = defaultConfig().pools[2]!.planner;
    expect([low.proactive, low.burstProtection, low.costOptimization]).toEqual([false, false, true]);
    expect(defaultConfig().pools.reduce((sum, p) => sum + p.maxGpus, 0)).toBe(defaultConfig().cluster.gpuBudget);
  });

  test("the configuration and DEFAULTS are frozen", () => {
    const c = defaultConfig();
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.optimizer)).toBe(true);
    expect(Object.isFrozen(c.pools[0]!.planner)).toBe(true);
    expect(Object.isFrozen(DEFAULTS.pools[0]!.targets)).toBe(true);
    expect(() => {
      (c.optimizer as { fallbacks: number }).fallbacks = 3;
    }).toThrow(TypeError);
  });

  test("reflectDelayMs follows the scrape interval unless given", () => {
    expect(parseConfig("pods: { scrapeIntervalMs: 250 }").config.pods.reflectDelayMs).toBe(500);
    expect(parseConfig("pods: { scrapeIntervalMs: 250, reflectDelayMs: 300 }").config.pods.reflectDelayMs).toBe(300);
  });
});

// Every option with values it must refuse, some through a cross-field rule (pools[0].tp 8 exceeds the
// pool's maxGpus of 4). `got` is the value reported when it is not the one set (a selector's pool name).
// The completeness test below keeps this table honest.
const INVALID: { path: string; values: unknown[]; got?: string }[] = [
  { path: "server.host", values: ["", 3] },
  { path: "server.port", values: [-1, 65536, 80.5, "8080"] },
  // A bearer token cannot carry a space or a line break: such a token refused every admin call.
  { path: "server.adminToken", values: ["short", 12345, "a token with spaces in it", "a-sixteen-char-token\n", "a-sixteen\tchar-token"] },
  { path: "server.maxBodyBytes", values: [0, 1.5, 1e9] },
  { path: "server.maxInflightPerConnection", values: [0, 70000] },
  { path: "optimizer.ttftWeight", values: [-0.1, "0.8", null, 1e9] },
  { path: "optimizer.tpotWeight", values: [-1, true, 1_000_001] },
  { path: "optimizer.transferOverheadMs", values: [-5, "5ms"] },
  { path: "optimizer.sloBufferFactor", values: [0, 1.5, -1, "0.9"] },
  { path: "optimizer.negativeHeadroomProb", values: [-0.01, 1.01] },
  { path: "optimizer.headroomStrategy", values: ["random", 1, "MOST"] },
  { path: "optimizer.localPrefill", values: ["always", false] },
  { path: "optimizer.pdThreshold", values: [-1, 2.5] },
  { path: "optimizer.fallbacks", values: [-1, 9, 1.5] },
  { path: "optimizer.shedSheddable", values: ["yes", 1] },
  { path: "topology.kvBytesPerToken", values: [-1, 0.5] },
  { path: "topology.bandwidthGBps.node", values: [0, -1, "fast"] },
  { path: "topology.bandwidthGBps.rack", values: [0] },
  { path: "topology.bandwidthGBps.cross", values: [-12.5] },
  { path: "predictors.prefillTtft", values: ["ml", 0] },
  { path: "predictors.decodeTtft", values: ["heuristic"] },
  { path: "predictors.decodeTpot", values: ["Profile"] },
  { path: "predictors.profiles", values: ["a100.csv", ["a100.csv"]] },
  { path: "predictors.profiles.a100", values: ["", 3] },
  { path: "predictors.defaultProfile", values: ["a100", "bad name"] },
  { path: "predictors.tpEfficiency", values: [0, 1.2] },
  { path: "predictors.refreshMs", values: [0, 2.5] },
  { path: "predictors.remote.timeoutMs", values: [0] },
  { path: "predictors.remote.gridPoints", values: [1, 65] },
  { path: "predictors.remote.trainingBufferSize", values: [99, 1.5] },
  { path: "predictors.remote.trainingFlushMs", values: [9] },
  { path: "predictors.online.quantile", values: [0, 1, "0.9"] },
  { path: "predictors.online.minPodSamples", values: [0, 2.5] },
  { path: "pods.scrapeIntervalMs", values: [0, 1.5] },
  { path: "pods.scrapeTimeoutMs", values: [0] },
  { path: "pods.staleAfterMs", values: [0, 100, 50] },
  { path: "pods.reflectDelayMs", values: [-1] },
  { path: "pods.inflightTtlFactor", values: [0.5, "2"] },
  { path: "pods.scrapeConcurrency", values: [0, 1.5, 5000] },
  { path: "pods.kubernetes.namespace", values: ["", 7] },
  { path: "pods.kubernetes.port", values: [0, 70000, "8000"] },
  { path: "pods.kubernetes.metricsPath", values: ["metrics", 3] },
  { path: "pods.kubernetes.resyncMs", values: [999, 1.5] },
  { path: "pods.kubernetes.selectors", values: ["app=vllm"] },
  { path: "pods.kubernetes.selectors.high", values: [""] },
  { path: "pods.kubernetes.selectors.nope", values: ["app=vllm"], got: '"nope"' },
  { path: "pools", values: [[], "high"] },
  { path: "pools[0].name", values: ["bad name!", ""] },
  { path: "pools[0].sloLevel", values: ["", 1] },
  { path: "pools[0].sloPriority", values: [0, 1.5] },
  { path: "pools[0].description", values: [3] },
  { path: "pools[0].targets.ttftMs", values: [0, "300ms", 1e9 + 1] },
  { path: "pools[0].targets.tpotMs", values: [-1, 3.6e9] },
  { path: "pools[0].expected.isl", values: [0, 1.5] },
  { path: "pools[0].expected.osl", values: [0] },
  { path: "pools[0].tp", values: [0, 65, 8] },
  { path: "pools[0].maxGpus", values: [0] },
  { path: "pools[0].gpuMemoryUtilization", values: [0, 1.1] },
  { path: "pools[0].planner.adjustmentIntervalMs", values: [0] },
  { path: "pools[0].planner.scaleUpThreshold", values: [0, 1.5] },
  { path: "pools[0].planner.bufferRatio", values: [0, 2] },
  { path: "pools[0].planner.percentile", values: [0, 100] },
  { path: "pools[0].planner.violationsAllowed", values: [-0.1, 1.1] },
  { path: "pools[0].planner.loadPredictor", values: ["prophet"] },
  { path: "pools[0].planner.proactive", values: ["true"] },
  { path: "pools[0].planner.burstProtection", values: [0] },
  { path: "pools[0].planner.costOptimization", values: ["no"] },
  { path: "pools[0].planner.cooldownMs", values: [-1, 1.5] },
  { path: "pools[0].planner.startupDelayMs", values: [-1] },
  { path: "pools[0].planner.burstFactor", values: [0.5, "2"] },
  { path: "pools[0].pods", values: ["10.0.0.1:8000"] },
  { path: "pools[0].pods[0].address", values: ["nohost", "a:0", "a:70000", "http://a:80", 8000] },
  { path: "pools[0].pods[0].role", values: ["worker", "Prefill"] },
  { path: "pools[0].pods[0].node", values: [""] },
  { path: "pools[0].pods[0].rack", values: [3] },
  { path: "pools[0].pods[0].tp", values: [0, 1.5] },
  { path: "pools[0].pods[0].profile", values: ["a100"] },
  // fetch refuses a URL with credentials: every scrape or decision failed.
  { path: "pools[0].pods[0].metricsUrl", values: ["ftp://a/metrics", "not a url", "http://user:pass@10.0.0.1:8000/metrics"] },
  { path: "pools[0].pods[0].draining", values: ["no"] },
  { path: "cluster.gpuBudget", values: [0, 1, 2.5] },
  { path: "cluster.gpuHourPrice", values: [-1, "2.5"] },
  { path: "workers.threads", values: [-1, 257, 1.5] },
  { path: "workers.inlineBelowPairs", values: [-1] },
  { path: "workers.batchCapacity", values: [0, 4097] },
  { path: "workers.batchWindowUs", values: [-1, 1e6] },
  { path: "workers.queuePerThread", values: [0, 65, 1.5] },
  { path: "workers.nice", values: [-1, 20, 2.5] },
  { path: "planners.actuator", values: ["simulator", "k8s"] },
  { path: "planners.apply.attempts", values: [0, 1.5] },
  { path: "planners.apply.initialBackoffMs", values: [0] },
  { path: "planners.apply.maxBackoffMs", values: [0, 500] },
  { path: "planners.webhook.url", values: ["ftp://x", 3, "https://user:pass@hooks.example/decisions", "http://token@hooks.example/"] },
  { path: "planners.webhook.timeoutMs", values: [0] },
  { path: "planners.webhook.headers", values: ["x"] },
  { path: "planners.kubernetes.namespace", values: [""] },
  { path: "planners.kubernetes.requestTimeoutMs", values: [0] },
  { path: "planners.kubernetes.conflictRetries", values: [-1] },
  { path: "planners.kubernetes.workloads", values: ["x"] },
];

describe("every option is validated", () => {
  const cases = INVALID.flatMap(({ path, values, got }) => values.map((value) => ({ path, value, got: got ?? shown(value) })));

  test.each(cases)("$path = $value is rejected, naming the field and the value", ({ path, value, got }) => {
    const problems = problemsOf(stringify(setPath(base(), path, value)));
    const line = problems.find((p) => p.startsWith(`${path}: `));
    expect(line, problems.join("\n")).toBeDefined();
    if (path === "server.adminToken" || path === "planners.webhook.headers") {
      expect(line).toContain(typeof value === "string" ? `got a secret of ${value.length} characters` : "got a secret");
      expect(line).not.toContain(String(value));
    } else {
      expect(line).toContain(`got ${got}`);
    }
  });

  test("a secret under a misspelled key is not shown either", () => {
    const problems = problemsOf(stringify({ ...base(), server: { admin_token: "s3cr3t-very-long-token-value", adminToken: 12345678901234567 } }));
    expect(problems).toContain("server.admin_token: unknown key, got a secret of 28 characters");
    expect(problems.find((p) => p.startsWith("server.adminToken: "))).toMatch(/got a secret$/);
    expect(problems.join("\n")).not.toMatch(/s3cr3t|12345678901234567/);
    // Nor inside a value that is shown whole: a misspelled section, a list where a mapping goes.
    for (const server of [{ serverr: { adminToken: "s3cr3t-very-long-token-value" } }, { server: [{ adminToken: "s3cr3t-very-long-token-value" }] }]) {
      const shown = problemsOf(stringify({ ...base(), ...server }));
      expect(shown.length).toBeGreaterThan(0);
      expect(shown.join("\n")).not.toContain("s3cr3t");
      expect(shown.join("\n")).toContain("(a secret)");
    }
  });

  test("the table covers every option", () => {
    const leaves = (value: unknown, path: string): string[] => {
      if (Array.isArray(value)) return [path, ...value.flatMap((v, i) => (i === 0 ? leaves(v, `${path}[0]`) : []))];
      if (value !== null && typeof value === "object") {
        return Object.entries(value).flatMap(([k, v]) => leaves(v, path === "" ? k : `${path}.${k}`));
      }
      return [path];
    };
    const full = base();
    setPath(full, "server.adminToken", "0123456789abcdef");
    setPath(full, "predictors.profiles.a100", "a100.csv");
    Object.assign((full.pools as Record<string, unknown>[])[0]!.pods as object, [
      {
        address: "10.0.0.1:8000",
        role: "both",
        node: "n1",
        rack: "r1",
        tp: 2,
        profile: "a100",
        metricsUrl: "http://10.0.0.1:8000/metrics",
        draining: false,
      },
    ]);
    const options = leaves(parseConfig(stringify(full)).config, "");
    const tested = new Set(INVALID.map((c) => c.path));
    expect(options.filter((o) => !tested.has(o))).toEqual([]);
  });

  test("values are rejected, never clamped, and every problem is reported at once", () => {
    const problems = problemsOf(
      "optimizer:\n  sloBufferFactor: 1.5\n  negativeHeadroomProb: 2\nworkers:\n  batchCapacity: 5000\n",
    );
    expect(problems).toEqual([
      "optimizer.sloBufferFactor: must be a number > 0 and <= 1, got 1.5",
      "optimizer.negativeHeadroomProb: must be a number >= 0 and <= 1, got 2",
      "workers.batchCapacity: must be an integer >= 1 and <= 4096, got 5000",
    ]);
  });

  test("at least one weight is > 0", () => {
    expect(problemsOf("optimizer: { ttftWeight: 0, tpotWeight: 0 }")).toEqual([
      "optimizer.ttftWeight: must be > 0 when optimizer.tpotWeight is 0 (one weight must be > 0), got 0",
    ]);
    expect(parseConfig("optimizer: { ttftWeight: 0, tpotWeight: 1 }").config.optimizer.ttftWeight).toBe(0);
  });

  // Node runs a timer of more than 2^31 - 1 ms after 1 ms: a 35-day scrape interval scraped every pod
  // every millisecond, a refresh or a planner ran in a loop, and every scrape or call timed out at once.
  test.each([
    "predictors.refreshMs",
    "predictors.remote.timeoutMs",
    "predictors.remote.trainingFlushMs",
    "pods.scrapeIntervalMs",
    "pods.scrapeTimeoutMs",
    "pods.kubernetes.resyncMs",
    "pools[0].planner.adjustmentIntervalMs",
    "planners.apply.initialBackoffMs",
    "planners.apply.maxBackoffMs",
    "planners.webhook.timeoutMs",
    "planners.kubernetes.requestTimeoutMs",
  ])("%s longer than a timer can wait (2^31 - 1 ms) is rejected", (path) => {
    const doc = setPath(base(), path, 2 ** 31);
    if (path.startsWith("planners.webhook")) setPath(doc, "planners.webhook.url", "http://127.0.0.1:9/hook");
    expect(problemsOf(stringify(doc))).toContainEqual(expect.stringMatching(new RegExp(`^${path.replace(/[.[\]]/g, "\\$&")}: must be an integer >= \\d+ and <= 2147483647, got 2147483648$`)));
    setPath(doc, path, 2 ** 31 - 1);
    if (path === "planners.apply.initialBackoffMs") setPath(doc, "planners.apply.maxBackoffMs", 2 ** 31 - 1);
    if (path === "pods.scrapeIntervalMs") setPath(doc, "pods.staleAfterMs", 2 ** 31);
    expect(parseConfig(stringify(doc)).config).toBeDefined();
  });

  test("webhook headers are names and values an HTTP request can carry (fetch refused the others at every decision)", () => {
    const webhook = (headers: Record<string, string>) =>
      stringify({ planners: { actuator: "webhook", webhook: { url: "http://127.0.0.1:9/hook", headers } } });
    const problems = problemsOf(webhook({ "authorization token": "Bearer x", Authorization: "Bearer s3cr3t\r\n", "x-price": "5 €" }));
    // Values are credentials: never shown.
    expect(problems.sort()).toEqual([
      "planners.webhook.headers.Authorization: must be a header value (no line breaks or NUL, Latin-1 characters only), got a secret of 15 characters",
      "planners.webhook.headers.authorization token: must be a header name (letters, digits and !#$%&'*+-.^_`|~), got \"authorization token\"",
      "planners.webhook.headers.x-price: must be a header value (no line breaks or NUL, Latin-1 characters only), got a secret of 3 characters",
    ]);
    const { config } = parseConfig(webhook({ Authorization: "Bearer s3cr3t\tx", "X-Trace_Id.1": "é" }));
    expect(new Headers(config.planners.webhook!.headers).get("authorization")).toBe("Bearer s3cr3t\tx");
  });

  test("a URL with credentials is refused for what it is (fetch refuses it: every scrape of the pod failed), its password not shown", () => {
    expect(problemsOf("pools: [{ sloLevel: low, pods: [{ address: 'a:1', role: both, metricsUrl: 'http://u:hunter2pass@a:1/metrics' }] }]")).toEqual([
      'pools[0].pods[0].metricsUrl: must be an http(s) URL without a user or password (fetch refuses credentials in a URL), got "http://***@a:1/metrics"',
    ]);
    const webhook = problemsOf("planners: { actuator: webhook, webhook: { url: 'https://admin:s3cretpw@example.com/hook' } }");
    expect(webhook).toEqual([expect.stringMatching(/^planners\.webhook\.url: .*, got "https:\/\/\*\*\*@example\.com\/hook"$/)]);
  });

  test("webhook headers written where they do not belong are not shown either", () => {
    for (const webhook of [
      "{ url: 'http://127.0.0.1:9/hook', header: { authorization: 'Bearer supersecretvalue123' } }",
      "{ url: 'http://127.0.0.1:9/hook', authorization: 'Bearer supersecretvalue123' }",
      "{ url: 'http://127.0.0.1:9/hook', x-api-key: 'sk-live-supersecretvalue123' }",
    ]) {
      const problems = problemsOf(`planners: { actuator: webhook, webhook: ${webhook} }`);
      expect(problems).toEqual([expect.stringMatching(/^planners\.webhook\.[a-z-]+: unknown key, got a secret/)]);
      expect(problems.join("\n")).not.toContain("supersecretvalue123");
    }
    const misspelled = problemsOf("planners: { webhooks: { url: 'http://127.0.0.1:9/hook', headers: { Authorization: 'Bearer supersecretvalue123' } } }");
    expect(misspelled.join("\n")).not.toContain("supersecretvalue123");
  });

  test("webhook header names are unique in any letter case, and content-type is headroom's (fetch joined the values)", () => {
    const webhook = (headers: string) => `planners: { actuator: webhook, webhook: { url: 'http://127.0.0.1:9/hook', headers: ${headers} } }`;
    expect(problemsOf(webhook("{ Authorization: 'Bearer aaaaaaaa', authorization: 'Bearer bbbbbbbb' }"))).toEqual([
      "planners.webhook.headers: Authorization and authorization are one header (names are unique in any letter case), got a secret",
    ]);
    expect(problemsOf(webhook("{ Content-Type: 'text/plain' }"))).toEqual(["planners.webhook.headers: Content-Type is set by headroom (the body is JSON), got a secret"]);
  });

  test("a remote predictor's timeout is below its values' freshness limit (3 refreshes), or no answer could be used", () => {
    expect(problemsOf("predictors: { decodeTpot: remote, refreshMs: 100, remote: { timeoutMs: 300 } }")).toEqual([
      "predictors.remote.timeoutMs: must be below the remote values' freshness limit, 3 x predictors.refreshMs (300): a later answer is never used, got 300",
    ]);
    expect(parseConfig("predictors: { decodeTpot: remote, refreshMs: 100, remote: { timeoutMs: 299 } }").config.predictors.remote.timeoutMs).toBe(299);
    // Without a remote quantity the section is not used.
    expect(parseConfig("predictors: { refreshMs: 100, remote: { timeoutMs: 5000 } }").config.predictors.remote.timeoutMs).toBe(5000);
  });
});

describe("the kubernetes actuator's configuration", () => {
  const workload = (name: string) => ({ kind: "Deployment", name });
  const all = (pool: string) => ({ prefill: workload(`${pool}-p`), decode: workload(`${pool}-d`), both: workload(`${pool}-b`) });

  test("needs a workload for every role each pool can run", () => {
    // The example the README used to show: high without decode; medium and low without anything.
    const problems = problemsOf(
      stringify({
        planners: { actuator: "kubernetes", kubernetes: { namespace: "llm-d", workloads: { high: { prefill: workload("vllm-high-prefill"), both: workload("vllm-high") } } } },
      }),
    );
    expect(problems).toEqual([
      "planners.kubernetes.workloads.high.decode: must be set when planners.actuator is kubernetes: pool high may run 2 workers (maxGpus 4 / tp 2), decode workers among them, got nothing",
      "planners.kubernetes.workloads.medium.prefill: must be set when planners.actuator is kubernetes: pool medium may run 3 workers (maxGpus 3 / tp 1), prefill workers among them, got nothing",
      "planners.kubernetes.workloads.medium.decode: must be set when planners.actuator is kubernetes: pool medium may run 3 workers (maxGpus 3 / tp 1), decode workers among them, got nothing",
      "planners.kubernetes.workloads.medium.both: must be set when planners.actuator is kubernetes: pool medium always runs at least one both worker, got nothing",
      "planners.kubernetes.workloads.low.both: must be set when planners.actuator is kubernetes: pool low always runs at least one both worker, got nothing",
    ]);
    // One worker at most (low: maxGpus 1) needs only its both workload.
    const ok = { planners: { actuator: "kubernetes", kubernetes: { namespace: "llm-d", workloads: { high: all("high"), medium: all("medium"), low: { both: workload("low-b") } } } } };
    expect(parseConfig(stringify(ok)).config.planners.kubernetes!.namespace).toBe("llm-d");
    // Unchecked while the actuator is another one.
    expect(parseConfig(stringify({ planners: { kubernetes: { workloads: { high: { both: workload("vllm-high") } } } } })).config.planners.actuator).toBe("advisory");
  });

  test("needs the workloads' namespace unless each names its own (no default that the RBAC does not cover)", () => {
    const workloads = { high: all("high"), medium: all("medium"), low: { both: workload("low-b") } };
    expect(problemsOf(stringify({ planners: { actuator: "kubernetes", kubernetes: { workloads } } }))).toEqual([
      "planners.kubernetes.namespace: must be set when planners.actuator is kubernetes and a workload names no namespace: the namespace of the pools' workloads (the shipped RBAC grants scale in llm-d), got nothing",
    ]);
    const placed = JSON.parse(JSON.stringify(workloads), (_, v: unknown) => (typeof v === "object" && v !== null && "kind" in v ? { ...v, namespace: "llm-d" } : v));
    const { config } = parseConfig(stringify({ planners: { actuator: "kubernetes", kubernetes: { workloads: placed } } }));
    expect(config.planners.kubernetes!.namespace).toBeUndefined();
    expect(config.planners.kubernetes!.workloads.low!.both).toEqual({ kind: "Deployment", name: "low-b", namespace: "llm-d" });
  });
});

describe("strictness", () => {
  test.each([
    ["a section", "optimiser: { ttftWeight: 0.5 }", "optimiser: unknown key, got {\"ttftWeight\":0.5}"],
    ["an option", "optimizer: { ttftWieght: 0.5 }", "optimizer.ttftWieght: unknown key, got 0.5"],
    ["a nested option", "topology: { bandwidthGBps: { nvlink: 900 } }", "topology.bandwidthGBps.nvlink: unknown key, got 900"],
    ["a pool field", "pools: [{ sloLevel: low, gpus: 2 }]", "pools[0].gpus: unknown key, got 2"],
    ["a planner field", "pools: [{ sloLevel: low, planner: { coolDown: 1 } }]", "pools[0].planner.coolDown: unknown key, got 1"],
    [
      "a pod field",
      "pools: [{ sloLevel: low, pods: [{ address: 'a:1', role: both, weight: 2 }] }]",
      "pools[0].pods[0].weight: unknown key, got 2",
    ],
  ])("an unknown key in %s is an error", (_, text, problem) => {
    expect(problemsOf(text)).toEqual([problem]);
  });

  test("a document that is not a mapping is an error", () => {
    expect(problemsOf("- optimizer\n")[0]).toMatch(/^\(top level\): must be a mapping of the sections .*, got \["optimizer"\]$/);
    expect(problemsOf("optimizer: 3\n")).toEqual(["optimizer: must be a mapping of optimizer options, got 3"]);
  });
});

describe("YAML syntax", () => {
  test("a syntax error names its line and column", () => {
    const problems = problemsOf("optimizer:\n  ttftWeight: [0.8\nserver:\n  port: 1\n");
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^line \d+, column \d+: /);
  });

  test("duplicate keys and a second document are errors", () => {
    expect(problemsOf("server:\n  port: 1\nserver:\n  port: 2\n")).toEqual(["line 3, column 1: Map keys must be unique"]);
    expect(problemsOf("server: {}\n---\nserver: {}\n")).toEqual([
      "line 2, column 1: a configuration is one YAML document, found a second one",
    ]);
  });

  test("an alias without its anchor, and an alias bomb, are configuration errors (found by fuzzing)", () => {
    expect(problemsOf("server: *nowhere\n")).toEqual([expect.stringMatching(/^yaml: .*[Aa]lias/)]);
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]", ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(", ")}]`)].join("\n");
    expect(problemsOf(bomb)).toEqual([expect.stringMatching(/^yaml: .*[Aa]lias/)]);
  });

  test("ConfigError carries its code", () => {
    try {
      parseConfig("a: [");
    } catch (err) {
      expect((err as ConfigError).code).toBe("CONFIG_INVALID");
      expect((err as ConfigError).message).toContain("invalid configuration");
    }
    expect.assertions(2);
  });
});

describe("pools", () => {
  test("a pool of a known level takes its missing fields from that level; sloLevel is stored lower-case", () => {
    const { pools } = parseConfig("pools:\n  - sloLevel: HIGH\n    targets: { ttftMs: 250 }\n").config;
    expect(pools).toHaveLength(1);
    expect(pools[0]).toMatchObject({
      name: "high",
      sloLevel: "high",
      sloPriority: 1,
      targets: { ttftMs: 250, tpotMs: 30 },
      tp: 2,
      maxGpus: 4,
      pods: [],
    });
  });

  test("a pool's empty sub-mappings take the level's defaults", () => {
    const { pools } = parseConfig("pools:\n  - sloLevel: low\n    planner:\n    pods:\n").config;
    expect(pools).toEqual([defaultConfig().pools[2]]);
  });

  test("a pool of another level needs its targets and priority", () => {
    expect(problemsOf("pools: [{ name: batch }]")).toEqual([
      "pools[0].sloPriority: must be an integer >= 1, got nothing",
      "pools[0].targets: must be a mapping of ttftMs, tpotMs, got nothing",
    ]);
    const { pools } = parseConfig("pools: [{ name: batch, sloPriority: 4, targets: { ttftMs: 10000, tpotMs: 200 } }]").config;
    expect(pools[0]).toMatchObject({ name: "batch", sloLevel: "batch", tp: 1, planner: { loadPredictor: "arima" } });
  });

  test("names and levels are unique, levels case-insensitively", () => {
    expect(problemsOf("pools: [{ sloLevel: high }, { sloLevel: High, name: premium }]")).toEqual([
      'pools[1].sloLevel: must be unique, case-insensitively (pools[0] has it too), got "High"',
    ]);
    expect(problemsOf("pools: [{ sloLevel: high }, { sloLevel: low, name: high }]")).toEqual([
      'pools[1].name: must be unique (pools[0] has it too), got "high"',
    ]);
  });

  test("pod addresses are unique across pools", () => {
    const text = stringify({
      pools: [
        { sloLevel: "high", pods: [{ address: "10.0.0.1:8000", role: "prefill" }] },
        { sloLevel: "low", pods: [{ address: "10.0.0.1:8000", role: "decode" }] },
      ],
    });
    expect(problemsOf(text)).toEqual([
      'pools[1].pods[0].address: must be unique across pools (pools[0].pods[0] has it too), got "10.0.0.1:8000"',
    ]);
    // However spelled: one pod to the registry, so one address here.
    const spelled = stringify({
      pools: [
        { sloLevel: "high", pods: [{ address: "10.0.0.1:8000", role: "prefill" }, { address: "[::1]:9000", role: "decode" }] },
        { sloLevel: "low", pods: [{ address: "10.0.0.1:08000", role: "decode" }, { address: "[0:0:0:0:0:0:0:1]:9000", role: "both" }] },
      ],
    });
    expect(problemsOf(spelled)).toEqual([
      'pools[1].pods[0].address: must be unique across pools (pools[0].pods[0] has it too), got "10.0.0.1:08000"',
      'pools[1].pods[1].address: must be unique across pools (pools[0].pods[1] has it too), got "[0:0:0:0:0:0:0:1]:9000"',
    ]);
  });

  test("pod addresses may be IPv6 or host names", () => {
    const text = stringify({
      pools: [
        {
          sloLevel: "medium",
          pods: [
            { address: "[fd00::1]:8000", role: "prefill" },
            { address: "vllm-decode-0.vllm.llm-d.svc:8000", role: "decode" },
          ],
        },
      ],
    });
    expect(parseConfig(text).config.pools[0]!.pods.map((p) => p.address)).toHaveLength(2);
  });

  test("the GPU budget covers one worker per pool", () => {
    expect(problemsOf("cluster: { gpuBudget: 3 }")).toEqual([
      "cluster.gpuBudget: must cover every pool's minimum of one worker (4 GPUs: the sum of the pools' tp), got 3",
    ]);
  });
});

describe("files", () => {
  test("a missing file is CONFIG_UNREADABLE", () => {
    const path = join(fixtures, "does-not-exist.yaml");
    try {
      loadConfigFile(path);
    } catch (err) {
      expect((err as ConfigError).code).toBe("CONFIG_UNREADABLE");
      expect((err as ConfigError).problems).toEqual([`${path}: cannot read the file (ENOENT)`]);
    }
    expect.assertions(2);
  });

  test("profile paths resolve against the file's directory", () => {
    const { config } = loadConfigFile(join(fixtures, "relative-profile.yaml"));
    expect(config.predictors.profiles).toEqual({ a100: join(fixtures, "profiles/a100.csv") });
    expect(config.pools[0]!.pods[0]!.profile).toBe("a100");
  });

  test("the shipped example's kubernetes actuator block validates when switched on", () => {
    const text = readFileSync(join(root, "deploy/config/headroom.yaml"), "utf8").replace("actuator: advisory ", "actuator: kubernetes ");
    const start = text.lastIndexOf("  # kubernetes:\n");
    expect(start).toBeGreaterThan(0);
    const uncommented = text
      .slice(start)
      .split("\n")
      .map((line) => line.replace(/^ {2}# /, "  "))
      .join("\n");
    const switched = text.slice(0, start) + uncommented;
    const { config } = parseConfig(switched);
    expect(config.planners.actuator).toBe("kubernetes");
    expect(Object.keys(config.planners.kubernetes!.workloads)).toEqual(["high", "medium", "low"]);
  });

  test("the shipped example validates, without warnings, and documents the defaults", () => {
    const { config, warnings } = loadConfigFile(join(root, "deploy/config/headroom.yaml"));
    expect(warnings).toEqual([]);
    expect(config.optimizer).toEqual(DEFAULTS.optimizer);
    expect(config.pools.map(({ pods, ...pool }) => pool)).toEqual(defaultConfig().pools.map(({ pods, ...pool }) => pool));
    expect(config.pools.map((p) => p.pods.length)).toEqual([2, 3, 1]);
    expect(config.topology.kvBytesPerToken).toBe(131072);
  });
});
