// `headroom client` against the embedded demo (simulated pods scraped by a real headroom on loopback):
// picks through headroom, completions streamed from the chosen pods, TTFT and TPOT measured, targets
// from the pool or given explicitly; bad options refused.

import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import { runClient, type ClientOptions, type ClientResult } from "../src/client/client.js";
import { silentLogger } from "../src/log.js";
import { startServing, type Serving } from "../src/serve.js";

let serving: Serving;
let base: string;

beforeAll(async () => {
  serving = await startServing({ port: 0, out: { write: () => true }, logger: silentLogger });
  base = `http://127.0.0.1:${serving.port}`;
  // Wait for the first scrapes: a pod awaiting its first scrape is not a candidate.
  for (let i = 0; i < 100; i++) {
    const state = (await (await fetch(`${base}/v1/state`)).json()) as { pools: { pods: { freshness: string }[] }[] };
    if (state.pools.flatMap((p) => p.pods).every((p) => p.freshness === "fresh")) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});
afterAll(() => serving.close());

const options = (over: Partial<ClientOptions>): ClientOptions => ({
  headroomUrl: base,
  promptTokens: 300,
  maxTokens: 5,
  count: 4,
  concurrency: 2,
  chat: false,
  timeoutMs: 20_000,
  ...over,
});

describe("headroom client", () => {
  it("picks through headroom, streams from the chosen decode pod, and measures TTFT and TPOT against the pool's targets", async () => {
    const results: ClientResult[] = [];
    const summary = await runClient(options({ level: "medium" }), (r) => results.push(r));
    expect(summary).toMatchObject({ requests: 4, succeeded: 4 });
    const medium = serving.fleet!.byPool("medium").map((p) => p.address);
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.pool).toBe("medium");
      expect(medium).toContain(r.decode);
      expect(medium).toContain(r.prefill);
      expect(r.tokens).toBe(5);
      expect(r.ttftMs).toBeGreaterThan(0);
      expect(r.tpotMs).toBeGreaterThan(0);
      expect(r.targets).toEqual({ ttftMs: 600, tpotMs: 50 });
      expect(typeof r.met).toBe("boolean");
    }
    expect(summary.met).toBe(results.filter((r) => r.met).length);
  });

  it("without a level, the default pool's targets judge the requests", async () => {
    const results: ClientResult[] = [];
    await runClient(options({ count: 2 }), (r) => results.push(r));
    for (const r of results) {
      expect(r.pool).toBe("medium");
      expect(r.targets).toEqual({ ttftMs: 600, tpotMs: 50 });
      expect(typeof r.met).toBe("boolean");
    }
  });

  it("judges explicit targets: an impossible TTFT is missed", async () => {
    const results: ClientResult[] = [];
    const summary = await runClient(options({ chat: true, count: 2, ttftMs: 0.001, tpotMs: 1000 }), (r) => results.push(r));
    expect(summary.succeeded).toBe(2);
    expect(summary.met).toBe(0);
    for (const r of results) expect(r.targets).toEqual({ ttftMs: 0.001, tpotMs: 1000 });
  });

  it("reports a refused pick with its status", async () => {
    const results: ClientResult[] = [];
    const summary = await runClient(options({ level: "platinum", count: 1 }), (r) => results.push(r));
    expect(summary.succeeded).toBe(0);
    expect(results[0].status).toBe(400);
    expect(results[0].error).toMatch(/UNKNOWN_LEVEL/);
  });

  it("the command prints one JSON line per request and a summary, and refuses bad options with exit 2", async () => {
    let stdout = "";
    const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: () => true } };
    expect(await runCli(["client", "--headroom", base, "--level", "low", "--count", "2", "--max-tokens", "3"], io)).toBe(0);
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[2].summary).toMatchObject({ requests: 2, succeeded: 2 });
    let stderr = "";
    const bad = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) } };
    expect(await runCli(["client", "--count", "2"], bad)).toBe(2);
    expect(stderr).toContain("give --gateway URL or --headroom URL");
    expect(await runCli(["client", "--headroom", base, "--count", "0"], bad)).toBe(2);
    expect(await runCli(["client", "--gateway", "ftp://x"], bad)).toBe(2);
  });

  /**
   * A gateway on loopback whose completions (POSTs) `answer` writes, anything else a 404; returns its URL,
   * the requests it saw (with whether each came on a connection that an earlier one had opened) and a closer.
   */
  async function gateway(answer: (res: ServerResponse) => void) {
    const sockets = new Set<Socket>();
    const seen: { method: string; url: string; reusedConnection: boolean }[] = [];
    const server = createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, reusedConnection: sockets.has(req.socket) });
      sockets.add(req.socket);
      req.resume();
      req.on("end", () => {
        if (req.method === "POST") answer(res);
        else res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      seen,
      close: () => {
        server.closeAllConnections();
        return new Promise((resolve) => server.close(resolve));
      },
    };
  }
  const event = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;

  it("through a gateway, warms fetch and the connection with an untimed request first, so the first TTFT is not charged for them", async () => {
    const g = await gateway((res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-headroom-pool": "high" });
      res.write(event({ choices: [{ text: "a" }] }));
      res.end("data: [DONE]\n\n");
    });
    try {
      const results: ClientResult[] = [];
      const summary = await runClient(options({ headroomUrl: undefined, gatewayUrl: g.url, count: 2, concurrency: 1 }), (r) => results.push(r));
      expect(summary).toMatchObject({ requests: 2, succeeded: 2 });
      // One warm-up, outside /v1/ (a gateway picks for anything there), before any completion…
      expect(g.seen.map((r) => r.method)).toEqual(["GET", "POST", "POST"]);
      expect(g.seen[0].url).toBe("/");
      // …whose connection the first timed request reuses: its clock does not include the connect either.
      expect(g.seen[1].reusedConnection).toBe(true);
    } finally {
      await g.close();
    }
  });

  it("a stream cut off before [DONE] is a failure, and keeps what it measured before the cut", async () => {
    const g = await gateway((res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-headroom-pool": "high" });
      res.write(event({ choices: [{ text: "a" }] }));
      setTimeout(() => {
        res.write(event({ choices: [{ text: "b" }] }));
        setTimeout(() => res.socket?.destroy(), 20);
      }, 20);
    });
    try {
      const results: ClientResult[] = [];
      const summary = await runClient(options({ headroomUrl: undefined, gatewayUrl: g.url, count: 2 }), (r) => results.push(r));
      expect(summary.succeeded).toBe(0);
      for (const r of results) {
        expect(r.status).toBe(200);
        expect(r.error).toBeDefined();
        expect(r.tokens).toBe(2);
        expect(r.ttftMs).toBeGreaterThan(0);
      }
    } finally {
      await g.close();
    }
  });

  it("a stream with an error event is a failure with its message, and the command exits 1", async () => {
    const g = await gateway((res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-headroom-pool": "high" });
      res.write(event({ choices: [{ text: "a" }] }));
      res.write(event({ error: { message: "boom", type: "InternalServerError", code: 500 } }));
      res.end("data: [DONE]\n\n");
    });
    try {
      let stdout = "";
      const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: () => true } };
      expect(await runCli(["client", "--gateway", g.url, "--count", "1", "--max-tokens", "3"], io)).toBe(1);
      const [r, { summary }] = stdout.trim().split("\n").map((l) => JSON.parse(l));
      expect(r).toMatchObject({ status: 200, tokens: 1 });
      expect(r.error).toMatch(/boom/);
      expect(r.met).toBeUndefined();
      expect(summary).toMatchObject({ requests: 1, succeeded: 0, met: 0 });
    } finally {
      await g.close();
    }
  });

  it("through a gateway, always says either the targets and met or why the targets cannot be had", async () => {
    let pool: string | undefined;
    const g = await gateway((res) => {
      res.writeHead(200, { "content-type": "text/event-stream", ...(pool === undefined ? {} : { "x-headroom-pool": pool }) });
      res.write(event({ choices: [{ text: "a" }] }));
      res.end("data: [DONE]\n\n");
    });
    const one = async (over: Partial<ClientOptions>) => {
      const results: ClientResult[] = [];
      await runClient(options({ headroomUrl: undefined, gatewayUrl: g.url, count: 1, ...over }), (r) => results.push(r));
      expect(results[0].error).toBeUndefined();
      return results[0];
    };
    try {
      // A pod straight (no x-headroom-pool), or an empty one: no pool to take targets from.
      for (const p of [undefined, ""]) {
        pool = p;
        for (const over of [{ level: "high" }, { ttftMs: 500 }, { tpotMs: 50 }]) {
          const r = await one(over);
          expect(r.pool).toBeUndefined();
          expect(r.targets).toBeUndefined();
          expect(r.met).toBeUndefined();
          expect(r.targetsError).toMatch(/no pool.*--ttft-ms and --tpot-ms/);
        }
        const r = await one({ ttftMs: 500, tpotMs: 50 });
        expect(r.targets).toEqual({ ttftMs: 500, tpotMs: 50 });
        expect(typeof r.met).toBe("boolean");
        expect(r.targetsError).toBeUndefined();
      }
      // A pool that is not one of the default pools, with only a gateway to ask.
      pool = "gold";
      const r = await one({ ttftMs: 500 });
      expect(r.pool).toBe("gold");
      expect(r.met).toBeUndefined();
      expect(r.targetsError).toMatch(/gold/);
      // A default pool's: an explicit target wins over the pool's.
      pool = "high";
      expect(await one({ ttftMs: 500 })).toMatchObject({ targets: { ttftMs: 500, tpotMs: 30 }, met: expect.any(Boolean) });
    } finally {
      await g.close();
    }
  });

  it("reads event streams framed as the SSE format allows: CRLF, CR or LF line ends, data: with or without its space", async () => {
    const a = JSON.stringify({ choices: [{ text: "a" }] });
    const b = JSON.stringify({ choices: [{ text: "b" }] });
    const streams: Record<string, string[]> = {
      crlf: [`data: ${a}\r\n\r\n`, `data: ${b}\r\n\r\n`, "data: [DONE]\r\n\r\n"],
      cr: [`data: ${a}\r\r`, `data: ${b}\r\r`, "data: [DONE]\r\r"],
      "no space": [`data:${a}\n\n`, `data:${b}\n\n`, "data:[DONE]\n\n"],
      // A CRLF cut between its CR and its LF, comments, other fields and an event's data over two lines.
      "cut crlf": [`: hello\r\nevent: completion\r\ndata: ${a}\r\n\r\n`, 'data: {"choices":\r', '\ndata: [{"text":"b"}]}\r\n\r', "\ndata: [DONE]\r\n\r\n"],
    };
    let frames: string[] = [];
    const g = await gateway((res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-headroom-pool": "high" });
      const rest = [...frames];
      const write = () => {
        const frame = rest.shift();
        if (frame === undefined) res.end();
        else {
          res.write(frame);
          setTimeout(write, 10);
        }
      };
      write();
    });
    try {
      for (const [name, stream] of Object.entries(streams)) {
        frames = stream;
        const results: ClientResult[] = [];
        await runClient(options({ headroomUrl: undefined, gatewayUrl: g.url, count: 1 }), (r) => results.push(r));
        expect({ name, error: results[0].error, tokens: results[0].tokens }).toEqual({ name, error: undefined, tokens: 2 });
        expect(results[0].ttftMs).toBeGreaterThan(0);
      }
    } finally {
      await g.close();
    }
  });

  it("counts tokens from the usage chunk when an event carries several, and survives a headroom that cannot give targets", async () => {
    const g = await gateway((res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-headroom-pool": "high" });
      res.write(event({ choices: [{ text: "one two three" }] }));
      setTimeout(() => {
        res.write(event({ choices: [{ text: "four five six" }] }));
        res.write(event({ choices: [], usage: { prompt_tokens: 300, completion_tokens: 6 } }));
        res.end("data: [DONE]\n\n");
      }, 500);
    });
    // Nothing listens there: the pool's targets cannot be asked for.
    const closed = await gateway(() => undefined);
    await closed.close();
    try {
      const results: ClientResult[] = [];
      const summary = await runClient(options({ headroomUrl: closed.url, gatewayUrl: g.url, count: 1 }), (r) => results.push(r));
      expect(summary).toMatchObject({ requests: 1, succeeded: 1, met: 0 });
      const [r] = results;
      expect(r.error).toBeUndefined();
      expect(r.tokens).toBe(6);
      // Two events 500 ms apart (on the server's clock) carry six tokens: five steps between the first
      // token and the last, about 100 ms each (over six, 83). The margin is for the first event reaching
      // the client late on a busy machine (at 50 ms apart it once measured 8.6 ms a step).
      expect(r.tpotMs).toBeGreaterThanOrEqual(90);
      expect(r.targetsError).toMatch(/fetch failed/);
      expect(r.met).toBeUndefined();
    } finally {
      await g.close();
    }
  });
});
