// The webhook actuator against a loopback server: the decision as JSON, retries with exponential
// backoff until the hook answers 2xx, bounded attempts, timeouts, redirects not followed, and no more
// of an answer's body read than a failure quotes; errors name the hook by its origin (no secret shown) and
// say why a connection failed.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { realClock } from "../src/clock.js";
import { MemoryLogger } from "../src/log.js";
import { DecisionApplier } from "../src/planner/actuators.js";
import type { ScaleRequest } from "../src/planner/types.js";
import { WebhookActuator } from "../src/planner/webhook-actuator.js";
import { until } from "./fixtures/wait.js";

interface Hook {
  url: string;
  /** scheme://host:port, as errors name the hook. */
  origin: string;
  received: { atMs: number; body: unknown; contentType: string | undefined }[];
  close(): Promise<void>;
}

/** Listens on loopback with the given server. */
async function serve(server: Server): Promise<Hook> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    origin: url,
    received: [],
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A hook that answers the given statuses in turn (the last one from then on); 0 never answers. */
async function hook(statuses: number[]): Promise<Hook> {
  const received: Hook["received"] = [];
  const server: Server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      received.push({ atMs: performance.now(), body: JSON.parse(text), contentType: req.headers["content-type"] });
      const status = statuses[Math.min(received.length, statuses.length) - 1]!;
      if (status !== 0) res.writeHead(status, { "content-type": "text/plain" }).end(status === 200 ? "ok" : "try later");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/scale`,
    origin,
    received,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const REQUEST: ScaleRequest = {
  pool: "high",
  prefill: 1,
  decode: 0,
  both: 1,
  tp: 2,
  gpus: 4,
  reason: "sizing",
  details: ["5.00 req/s at ISL 2000, OSL 150: …"],
  atMs: 30_000,
};

let open: Hook | undefined;
afterEach(async () => {
  await open?.close();
  open = undefined;
});

function applier(url: string, attempts: number, timeoutMs?: number) {
  const logger = new MemoryLogger();
  const errors: string[] = [];
  const a = new DecisionApplier({
    pool: "high",
    actuator: new WebhookActuator({ url, timeoutMs }),
    clock: realClock,
    logger,
    attempts,
    initialBackoffMs: 40,
    maxBackoffMs: 1000,
    onFailure: (e) => errors.push(e),
  });
  return { a, errors, logger };
}

describe("webhook actuator", () => {
  it("posts the decision and retries with exponential backoff until the hook accepts it", async () => {
    open = await hook([503, 503, 200]);
    const { a, errors } = applier(open.url, 4);
    a.submit(REQUEST);
    await a.settled();
    expect(a.state()).toMatchObject({ status: "applied", attempts: 3, failures: 2 });
    expect(errors).toEqual([`webhook ${open.origin}: HTTP 503 try later`, `webhook ${open.origin}: HTTP 503 try later`]);
    expect(open.received).toHaveLength(3);
    expect(open.received[0]!.contentType).toBe("application/json");
    expect(open.received[0]!.body).toEqual({
      pool: "high",
      workers: { prefill: 1, decode: 0, both: 1 },
      tp: 2,
      gpus: 4,
      reason: "sizing",
      details: ["5.00 req/s at ISL 2000, OSL 150: …"],
      decidedAtMs: 30_000,
    });
    // Backoff 40 ms, then 80 ms (timers never fire early; the slack is for the loopback round trip).
    const [first, second, third] = open.received.map((r) => r.atMs) as [number, number, number];
    expect(second - first).toBeGreaterThanOrEqual(35);
    expect(third - second).toBeGreaterThanOrEqual(75);
  });

  it("gives up after the configured attempts and reports the failure", async () => {
    open = await hook([500]);
    const { a, logger } = applier(open.url, 3);
    a.submit(REQUEST);
    await a.settled();
    expect(open.received).toHaveLength(3);
    expect(a.state()).toMatchObject({ status: "failed", attempts: 3, failures: 3, lastError: `webhook ${open.origin}: HTTP 500 try later` });
    expect(logger.lines.map((l) => `${l.level} ${l.message}`)).toEqual([
      "warn planner decision could not be applied; retrying",
      "error planner decision failed; kept, and tried again at the next interval",
    ]);
  });

  it("fails an attempt that the hook does not answer in time", async () => {
    open = await hook([0]);
    const { a } = applier(open.url, 1, 50);
    a.submit(REQUEST);
    await a.settled();
    expect(a.state()).toMatchObject({ status: "failed", lastError: `webhook ${open.origin}: timed out` });
  });

  it("does not follow a redirect: the decision counts as failed, naming where it pointed", async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      if (req.url === "/scale") res.writeHead(302, { location: "/elsewhere" }).end();
      else res.writeHead(200).end("ok");
    });
    open = await serve(server);
    const { a } = applier(`${open.url}/scale`, 1);
    a.submit(REQUEST);
    await a.settled();
    // Before: fetch followed with a GET without the body, and the 200 from /elsewhere counted as applied.
    expect(a.state()).toMatchObject({
      status: "failed",
      lastError: `webhook ${open.origin}: HTTP 302 redirects to "/elsewhere", not followed: the decision was not delivered`,
    });
    expect(seen).toEqual(["POST /scale"]);
  });

  it("reads no more than the start of a failure's body", async () => {
    let written = 0;
    let finished = false;
    let cutOff = false;
    const chunk = "x".repeat(1 << 16);
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(503, { "content-type": "text/plain" });
      // 64 MiB, written as fast as the client reads it.
      const more = () => {
        while (written < 1024) {
          written++;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        finished = true;
        res.end();
      };
      res.on("close", () => {
        cutOff = !res.writableFinished;
        res.removeAllListeners("drain");
      });
      more();
    });
    open = await serve(server);
    const { a } = applier(`${open.url}/scale`, 1, 10_000);
    a.submit(REQUEST);
    await a.settled();
    // The attempt failed on the answer's quoted start, not on the timeout while the body came in.
    expect(a.state().lastError).toBe(`webhook ${open.origin}: HTTP 503 ${"x".repeat(200)}`);
    // Before, the whole body was downloaded (and held) before the 200 characters were quoted.
    expect(finished).toBe(false);
    // The client cancelled the rest: the server saw the connection close mid-answer, having written
    // little more than what socket buffers hold.
    await until(() => cutOff, "the answer cut off by the client");
    expect(written).toBeLessThan(256);
  });

  it("names the hook by its origin alone: a secret in the path, query or userinfo is not shown", async () => {
    open = await hook([500]);
    const secretUrl = `${open.origin}/services/T0001/B0002/XyZsecret?token=s3cr3t#frag`;
    const { a, errors, logger } = applier(secretUrl, 1);
    a.submit(REQUEST);
    await a.settled();
    // Before: `webhook <the whole URL>: …`, logged and served by GET /v1/planner without auth.
    expect(a.state().lastError).toBe(`webhook ${open.origin}: HTTP 500 try later`);
    const shown = JSON.stringify({ errors, lines: logger.lines, state: a.state() });
    for (const secret of ["XyZsecret", "s3cr3t", "services", "frag"]) expect(shown).not.toContain(secret);
    // fetch refuses a URL with credentials, quoting it whole: the quote is shown as the origin too.
    const withCredentials = applier(`http://hook:p4ssw0rd@127.0.0.1:9/scale?token=s3cr3t`, 1);
    withCredentials.a.submit(REQUEST);
    await withCredentials.a.settled();
    const lastError = withCredentials.a.state().lastError!;
    expect(lastError).toMatch(/^webhook http:\/\/127\.0\.0\.1:9: Request cannot be constructed from a URL that includes credentials/);
    expect(JSON.stringify({ e: withCredentials.errors, l: withCredentials.logger.lines, lastError })).not.toMatch(/p4ssw0rd|s3cr3t|hook:/);
  });

  it("says why a connection failed (refused, DNS, TLS), not just 'fetch failed'", async () => {
    // A port nothing listens on: listen, note the port, close.
    const closed = await serve(createServer());
    const port = new URL(closed.url).port;
    await closed.close();
    const { a } = applier(`http://127.0.0.1:${port}/scale?token=s3cr3t`, 1);
    a.submit(REQUEST);
    await a.settled();
    // Before: `webhook http://127.0.0.1:<port>/scale?token=s3cr3t: fetch failed`.
    expect(a.state().lastError).toBe(`webhook http://127.0.0.1:${port}: fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  it("refuses a URL that is not http(s)", () => {
    expect(() => new WebhookActuator({ url: "ftp://example/scale" })).toThrow(/must be an http\(s\) URL/);
  });
});
