// The scraper against real HTTP servers on 127.0.0.1: outcomes and their causes (timeouts, HTTP
// errors, malformed and oversized bodies, dropped connections), counters, the concurrency bound,
// skipping a pod still in flight, nothing kept per scrape, the request's headers, logging once per
// cause with recovery, the loop and close().

import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ManualClock, realClock, type Clock } from "../src/clock.js";
import { MemoryLogger } from "../src/log.js";
import { Scraper, type ScrapeTarget } from "../src/pods/scraper.js";
import type { ScrapeOutcome } from "../src/pods/types.js";
import { sleep, until } from "./fixtures/wait.js";

const GOOD = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "fixtures/vllm-metrics.txt"), "utf8");
const CAP_BYTES = 64 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** One loopback server; each test adds the paths it needs. */
const routes = new Map<string, Handler>();
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const handler = routes.get(req.url ?? "");
    if (handler === undefined) {
      res.writeHead(404).end();
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

let nextPath = 0;
/** Serves `handler` on a fresh path and returns a target for it. */
function serve(handler: Handler, address = `pod-${nextPath}:8000`): ScrapeTarget {
  const path = `/metrics-${nextPath++}`;
  routes.set(path, handler);
  return { address, metricsUrl: base + path };
}

const sendGood = (res: ServerResponse) => res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(GOOD);
const good: Handler = (_req, res) => sendGood(res);

/** Holds each request until `release()`; counts requests in progress and their peak. */
function gate() {
  const held: ServerResponse[] = [];
  const state = { current: 0, peak: 0, total: 0 };
  const handler: Handler = (req, res) => {
    state.current++;
    state.total++;
    state.peak = Math.max(state.peak, state.current);
    held.push(res);
    req.on("close", () => state.current--);
  };
  const release = () => {
    for (const res of held.splice(0)) sendGood(res);
  };
  return { handler, release, state };
}

interface Setup {
  targets: ScrapeTarget[];
  clock?: Clock;
  scrapeTimeoutMs?: number;
  scrapeConcurrency?: number;
  scrapeIntervalMs?: number;
}

function scraper(setup: Setup) {
  const registry = new Registry();
  const logger = new MemoryLogger();
  const outcomes: { address: string; outcome: ScrapeOutcome }[] = [];
  const s = new Scraper({
    clock: setup.clock ?? realClock,
    logger,
    registry,
    scrapeIntervalMs: setup.scrapeIntervalMs ?? 100,
    scrapeTimeoutMs: setup.scrapeTimeoutMs ?? 2000,
    scrapeConcurrency: setup.scrapeConcurrency ?? 8,
    maxBodyBytes: CAP_BYTES,
    targets: () => setup.targets,
    onOutcome: (address, outcome) => outcomes.push({ address, outcome }),
  });
  return { s, registry, logger, outcomes };
}

/** headroom_pod_scrapes_total by result. */
async function scrapeCounts(registry: Registry): Promise<Record<string, number>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === "headroom_pod_scrapes_total")!;
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.result), v.value]));
}

function causes(outcomes: { address: string; outcome: ScrapeOutcome }[]): Record<string, string> {
  return Object.fromEntries(outcomes.map(({ address, outcome }) => [address, outcome.ok ? "ok" : outcome.cause]));
}

describe("outcomes", () => {
  test("a good pod's metrics reach the sink, stamped with the clock, counted and timed", async () => {
    const clock = new ManualClock(5000);
    const { s, registry, outcomes } = scraper({ targets: [serve(good, "10.0.0.1:8000")], clock });
    await s.round();
    expect(outcomes).toHaveLength(1);
    const { address, outcome } = outcomes[0]!;
    expect(address).toBe("10.0.0.1:8000");
    expect(outcome.ok && outcome.metrics).toMatchObject({ scrapedAtMs: 5000, waiting: 3, running: 12, kvUsage: 0.4275 });
    expect(await scrapeCounts(registry)).toEqual({ ok: 1 });
    expect(await registry.getSingleMetricAsString("headroom_pod_scrape_duration_seconds")).toMatch(
      /^headroom_pod_scrape_duration_seconds_count 1$/m,
    );
    await s.close();
  });

  test("every kind of failure is reported with its cause and counted by bounded label", async () => {
    const refused = createServer();
    await new Promise<void>((resolve) => refused.listen(0, "127.0.0.1", resolve));
    const refusedPort = (refused.address() as AddressInfo).port;
    await new Promise((resolve) => refused.close(resolve));

    const timers: NodeJS.Timeout[] = [];
    const targets = [
      serve((_req, res) => timers.push(setTimeout(() => sendGood(res), 1500)), "slow:1"),
      serve((_req, res) => res.writeHead(500).end("engine dead"), "status-500:1"),
      serve((_req, res) => res.writeHead(503).end(), "status-503:1"),
      serve((_req, res) => res.writeHead(200).end("vllm:num_requests_waiting{model_name=oops} 1\n"), "malformed:1"),
      serve((_req, res) => res.writeHead(200).end("<html>hello</html>"), "not-vllm:1"),
      serve((_req, res) => {
        // Grows past the cap without saying so up front; stops once the client hangs up.
        res.writeHead(200);
        const chunk = "# padding padding padding padding padding padding padding padding\n".repeat(256);
        let sent = 0;
        const pump = () => {
          while (!res.destroyed && sent < 1000 && res.write(chunk)) sent++;
          if (!res.destroyed && sent < 1000) res.once("drain", pump);
          else res.end();
        };
        pump();
      }, "growing:1"),
      serve((_req, res) => res.writeHead(200, { "content-length": String(CAP_BYTES + 1) }).end(), "declared-large:1"),
      serve((req) => req.socket.destroy(), "hang-up:1"),
      serve((_req, res) => {
        res.writeHead(200, { "content-length": "5000" });
        res.write(GOOD.slice(0, 500), () => res.destroy());
      }, "cut-body:1"),
      { address: "refused:1", metricsUrl: `http://127.0.0.1:${refusedPort}/metrics` },
    ];
    // The slow target answers well after the timeout (its cause says the timeout applied); the others
    // have the timeout's whole length to fail as themselves on a loaded host.
    const { s, registry, outcomes } = scraper({ targets, scrapeTimeoutMs: 800 });
    await s.round();
    expect(causes(outcomes)).toEqual({
      "slow:1": "timeout",
      "status-500:1": "http_500",
      "status-503:1": "http_503",
      "malformed:1": "parse_error",
      "not-vllm:1": "missing_metric",
      "growing:1": "too_large",
      "declared-large:1": "too_large",
      "hang-up:1": "connection",
      "cut-body:1": "connection",
      "refused:1": "connection",
    });
    for (const { outcome } of outcomes) if (!outcome.ok) expect(outcome.message).not.toBe("");
    expect(await scrapeCounts(registry)).toEqual({
      timeout: 1,
      http_5xx: 2,
      parse_error: 1,
      missing_metric: 1,
      too_large: 2,
      connection: 3,
    });
    await s.close();
    for (const timer of timers) clearTimeout(timer);
  });

  test("two scrapers can share one registry", async () => {
    const registry = new Registry();
    const options = {
      clock: realClock,
      logger: new MemoryLogger(),
      registry,
      scrapeIntervalMs: 100,
      scrapeTimeoutMs: 1000,
      scrapeConcurrency: 1,
      targets: () => [serve(good)],
      onOutcome: () => {},
    };
    const a = new Scraper(options);
    const b = new Scraper(options);
    await Promise.all([a.round(), b.round()]);
    expect(await scrapeCounts(registry)).toEqual({ ok: 2 });
    await Promise.all([a.close(), b.close()]);
  });
});

/** The abort signals an object holds in its fields, directly or in a Set, Map or array there. */
function signalsHeldBy(object: object): AbortSignal[] {
  const out: AbortSignal[] = [];
  const visit = (value: unknown, depth: number): void => {
    if (value instanceof AbortSignal) out.push(value);
    else if (value instanceof AbortController) out.push(value.signal);
    else if (depth > 0 && (value instanceof Set || Array.isArray(value))) for (const v of value) visit(v, depth - 1);
    else if (depth > 0 && value instanceof Map) for (const v of value.values()) visit(v, depth - 1);
  };
  for (const value of Object.values(object)) visit(value, 2);
  return out;
}

/**
 * The entries a signal keeps for the signals AbortSignal.any made from it: Node 20 keeps one per join
 * for the signal's whole life (nodejs/node#55351), in a set under its kDependantSignals symbol.
 */
function dependantsOf(signal: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(signal).find((symbol) => symbol.description === "kDependantSignals");
  return key === undefined ? 0 : (signal as unknown as Record<symbol, Set<unknown>>)[key]!.size;
}

describe("load", () => {
  test("scrapes leave nothing behind on the scraper: no abort signal of its own keeps a record of them", async () => {
    const targets = Array.from({ length: 10 }, (_, i) => serve(good, `kept-${i}:1`));
    const { s, outcomes } = scraper({ targets });
    for (let i = 0; i < 50; i++) await s.round();
    expect(outcomes).toHaveLength(500);
    const held = signalsHeldBy(s);
    expect(held.map(dependantsOf)).toEqual(held.map(() => 0));
    // Each scrape's own controller is gone once it has been reported.
    expect(held).toHaveLength(0);
    await s.close();
  });

  test("scrapes ask for the page uncompressed, in the text format the parser reads", async () => {
    const headers: IncomingMessage["headers"][] = [];
    const { s, outcomes } = scraper({
      targets: [
        serve((req, res) => {
          headers.push(req.headers);
          sendGood(res);
        }),
      ],
    });
    await s.round();
    expect(causes(outcomes)).toEqual({ [outcomes[0]!.address]: "ok" });
    expect(headers[0]).toMatchObject({ "accept-encoding": "identity", accept: "text/plain;version=0.0.4" });
    await s.close();
  });

  test("no more than scrapeConcurrency scrapes at once, and every pod still gets its turn", async () => {
    const g = gate();
    const targets = Array.from({ length: 10 }, () => serve(g.handler));
    const { s, outcomes } = scraper({ targets, scrapeConcurrency: 3 });
    const round = s.round();
    await until(() => g.state.current === 3);
    // Give a fourth request every chance to arrive if the bound were not kept.
    await sleep(50);
    expect(g.state.current).toBe(3);
    await until(() => {
      g.release();
      return outcomes.length === 10;
    });
    await round;
    expect(g.state.peak).toBe(3);
    expect(g.state.total).toBe(10);
    expect(new Set(outcomes.map((o) => o.address)).size).toBe(10);
    await s.close();
  });

  test("a pod still being scraped is skipped by the next round, then scraped again", async () => {
    const g = gate();
    const { s, registry, outcomes } = scraper({ targets: [serve(g.handler, "busy:1")] });
    const first = s.round();
    await until(() => g.state.current === 1);
    await s.round();
    expect(g.state.total).toBe(1);
    expect(outcomes).toHaveLength(0);
    g.release();
    await first;
    expect(causes(outcomes)).toEqual({ "busy:1": "ok" });
    expect(await scrapeCounts(registry)).toEqual({ ok: 1, skipped: 1 });
    const third = s.round();
    await until(() => g.state.total === 2);
    g.release();
    await third;
    expect(outcomes).toHaveLength(2);
    await s.close();
  });
});

describe("logging", () => {
  test("a failure is logged once per cause, its recovery once, and a new failure again", async () => {
    let status = 500;
    const target = serve((_req, res) => (status === 200 ? sendGood(res) : res.writeHead(status).end()), "flaky:1");
    const { s, logger, outcomes } = scraper({ targets: [target] });
    const rounds = async (n: number) => {
      for (let i = 0; i < n; i++) await s.round();
    };
    await rounds(3);
    status = 502;
    await rounds(2);
    status = 200;
    await rounds(3);
    status = 500;
    await rounds(2);
    expect(outcomes).toHaveLength(10);
    expect(logger.lines.map((l) => [l.level, l.message, l.fields?.cause ?? l.fields?.previousCause])).toEqual([
      ["warn", "pod scrape failed", "http_500"],
      ["warn", "pod scrape failed", "http_502"],
      ["info", "pod scrape recovered", "http_502"],
      ["warn", "pod scrape failed", "http_500"],
    ]);
    expect(logger.lines[0]!.fields).toMatchObject({ subject: "flaky:1", metricsUrl: target.metricsUrl });
    await s.close();
  });

  test("a pod that leaves and comes back is logged afresh", async () => {
    const target = serve((_req, res) => res.writeHead(500).end(), "returning:1");
    const setup: Setup = { targets: [target] };
    const { s, logger } = scraper(setup);
    await s.round();
    setup.targets = [];
    await s.round();
    setup.targets = [target];
    await s.round();
    expect(logger.lines.filter((l) => l.message === "pod scrape failed")).toHaveLength(2);
    await s.close();
  });
});

describe("the loop", () => {
  test("rounds run on the injected clock's interval", async () => {
    const clock = new ManualClock();
    const { s, outcomes } = scraper({ targets: [serve(good)], clock, scrapeIntervalMs: 100 });
    s.start();
    clock.advance(99);
    await sleep(30);
    expect(outcomes).toHaveLength(0);
    clock.advance(1);
    await until(() => outcomes.length === 1);
    clock.advance(100);
    await until(() => outcomes.length === 2);
    expect(outcomes.map((o) => o.outcome.ok && o.outcome.metrics.scrapedAtMs)).toEqual([100, 200]);
    await s.close();
  });

  test("close() stops the rounds and aborts scrapes in flight without reporting them", async () => {
    const g = gate();
    const clock = new ManualClock();
    const { s, outcomes } = scraper({ targets: [serve(g.handler)], clock, scrapeTimeoutMs: 10_000 });
    s.start();
    clock.advance(100);
    await until(() => g.state.current === 1);
    const startedMs = performance.now();
    await s.close();
    expect(performance.now() - startedMs).toBeLessThan(1000);
    await until(() => g.state.current === 0);
    clock.advance(1000);
    await sleep(30);
    expect(g.state.total).toBe(1);
    expect(outcomes).toHaveLength(0);
  });

  test("a sink that throws is logged and the loop goes on", async () => {
    const clock = new ManualClock();
    const registry = new Registry();
    const logger = new MemoryLogger();
    let calls = 0;
    const s = new Scraper({
      clock,
      logger,
      registry,
      scrapeIntervalMs: 100,
      scrapeTimeoutMs: 1000,
      scrapeConcurrency: 1,
      targets: () => [serve(good)],
      onOutcome: () => {
        calls++;
        throw new Error("sink broke");
      },
    });
    s.start();
    clock.advance(100);
    await until(() => logger.lines.some((l) => l.level === "error"));
    clock.advance(100);
    await until(() => calls === 2);
    expect(logger.lines.find((l) => l.level === "error")!.fields).toMatchObject({ error: "Error: sink broke" });
    await s.close();
  });
});
