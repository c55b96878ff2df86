// WS /v1/stream on a real server and Engine with a real WebSocket client (the `ws` package, which
// @kubernetes/client-node depends on): answers in order, reports, the in-flight bound, bad frames.

import { pack, unpack } from "msgpackr";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { POOLS, startServer, type Harness } from "./fixtures/server-harness.js";
import { sleep } from "./fixtures/wait.js";

const harnesses: Harness[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const h of harnesses.splice(0)) await h.close();
});

/** A connected client whose `next()` resolves with the next decoded frame. */
async function connect(h: Harness) {
  const ws = new WebSocket(h.wsUrl);
  sockets.push(ws);
  const frames: unknown[] = [];
  const waiters: ((frame: any) => void)[] = [];
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(true);
    const frame = unpack(data);
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return {
    ws,
    send: (frame: unknown) => ws.send(pack(frame)),
    next: (): Promise<any> => (frames.length > 0 ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiters.push(resolve))),
  };
}

async function start(server = "{}", pools = POOLS) {
  const h = await startServer(server, pools);
  harnesses.push(h);
  return h;
}

describe("WS /v1/stream", () => {
  // uWebSockets.js answers the first of the offered subprotocols (RFC 6455 §4.2.2: one, from the list);
  // the whole list back would fail the handshake of a client that offered two.
  it("gives a client that offers subprotocols one of them back, the first, and serves it", async () => {
    const h = await start();
    for (const offered of [["msgpack"], ["msgpack", "headroom.v1"]]) {
      const ws = new WebSocket(h.wsUrl, offered);
      sockets.push(ws);
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      expect(ws.protocol).toBe("msgpack");
      const answer = new Promise<any>((resolve) => ws.once("message", (data: Buffer) => resolve(unpack(data))));
      ws.send(pack({ t: "pick", items: [{ sloLevel: "high", inputTokens: 100, seed: 1 }] }));
      expect((await answer).t).toBe("picked");
    }
  });

  it("answers a frame of picks item by item, in order, errors in their places", async () => {
    const h = await start();
    const c = await connect(h);
    c.send({
      t: "pick",
      items: [
        { requestId: "s1", sloLevel: "high", inputTokens: 1200, maxTokens: 80, seed: 1 },
        { requestId: "s2", slo_level: "medium", prompt: "hello there", seed: 2 },
        { sloLevel: "gold" },
        { sloLevel: "low" },
        { sloLevel: "high", prefixHit: 3 },
        { sloLevel: "high", sloTtftMs: 0.001, priority: -1 },
        { sloLevel: "high", explain: true },
      ],
    });
    const frame = await c.next();
    expect(frame.t).toBe("picked");
    const [high, medium, gold, low, bad, shed, explained] = frame.items;
    expect(high).toEqual({ requestId: "s1", pool: "high", prefill: expect.stringMatching(/^10\.0\.0\.[12]:8000$/), decode: expect.stringMatching(/^10\.0\.0\.[34]:8000$/), outcome: "positive_headroom", ttftMs: expect.any(Number), tpotMs: expect.any(Number) });
    expect(medium).toEqual({ requestId: "s2", pool: "medium", decode: "10.0.1.1:8000", outcome: "positive_headroom", ttftMs: expect.any(Number), tpotMs: expect.any(Number) });
    expect(gold.error).toEqual({ code: "UNKNOWN_LEVEL", message: expect.stringContaining("known: high, medium, low") });
    expect(low.error.code).toBe("NO_CANDIDATES");
    expect(bad.error).toEqual({ code: "REQUEST_INVALID", message: expect.stringMatching(/^items\[4\]\.prefixHit: /) });
    expect(shed.error.code).toBe("SHED");
    expect(explained.error).toEqual({ code: "REQUEST_INVALID", message: expect.stringMatching(/^items\[6\]\.explain: /) });
    expect(h.engine.cluster.inflight.size).toBe(2);
  });

  it("answers frames in the order they came, reports included; a bad report frame applies nothing", async () => {
    const h = await start();
    const c = await connect(h);
    c.send({ t: "pick", items: [{ requestId: "a", sloLevel: "high", seed: 1 }, { requestId: "b", sloLevel: "high", seed: 2 }] });
    // A report is applied when its frame arrives, so it follows the answer to its pick.
    expect((await c.next()).items.map((i: { requestId: string }) => i.requestId)).toEqual(["a", "b"]);
    c.send({ t: "pick", items: [{ requestId: "c", sloLevel: "high" }] });
    c.send({ t: "report", items: [{ requestId: "a", ok: true, ttftMs: 30 }, { requestId: "b", ok: "maybe" }] });
    c.send({ t: "report", items: [{ requestId: "a", ok: true, ttftMs: 30, tpotMs: 4 }, { requestId: "zzz", ok: false }] });
    c.send({ t: "pick", items: [{ requestId: "d", sloLevel: "medium" }] });
    expect((await c.next()).items[0]).toMatchObject({ requestId: "c", pool: "high" });
    expect(await c.next()).toEqual({ t: "error", error: { code: "REQUEST_INVALID", message: expect.stringMatching(/^items\[1\]\.ok: /) } });
    expect(await c.next()).toEqual({ t: "reported", known: 1, unknown: 1 });
    expect((await c.next()).items[0]).toMatchObject({ requestId: "d", pool: "medium" });
    expect(h.engine.cluster.inflight.size).toBe(3);
  });

  it("answers picks beyond maxInflightPerConnection with OVERLOADED, never dropping one", async () => {
    // Picks wait 100 ms for their batch, so later frames arrive while the first is unanswered.
    const h = await start("{ maxInflightPerConnection: 3 }", POOLS.replace("workers: { threads: 0 }", "workers: { threads: 0, batchWindowUs: 100000 }"));
    const c = await connect(h);
    const item = (k: number) => ({ requestId: `o${k}`, sloLevel: "high", seed: k });
    c.send({ t: "pick", items: [1, 2].map(item) });
    c.send({ t: "pick", items: [3, 4, 5].map(item) });
    c.send({ t: "pick", items: [6, 7].map(item) });
    const overloaded = { error: { code: "OVERLOADED", message: "more than 3 unanswered picks on this connection" } };
    expect((await c.next()).items.map((i: { requestId: string }) => i.requestId)).toEqual(["o1", "o2"]);
    const second = await c.next();
    expect(second.items[0].requestId).toBe("o3");
    expect(second.items.slice(1)).toEqual([overloaded, overloaded]);
    expect((await c.next()).items).toEqual([overloaded, overloaded]);
    // Once answered, the connection's picks are free again.
    c.send({ t: "pick", items: [8, 9, 10].map(item) });
    expect((await c.next()).items.map((i: { requestId: string }) => i.requestId)).toEqual(["o8", "o9", "o10"]);
  });

  it("holds answers while the client does not read; picks then pile up against the bound, and none is lost", async () => {
    const h = await start("{ maxInflightPerConnection: 2048 }");
    const FRAMES = 300;
    const ITEMS = 200;
    /** Frames sent a little apart, so each is answered before the next arrives unless answers are held. */
    async function run(paused: boolean) {
      const c = await connect(h);
      if (paused) c.ws.pause();
      for (let f = 0; f < FRAMES; f++) {
        c.send({ t: "pick", items: Array.from({ length: ITEMS }, (_, k) => ({ requestId: `${paused}.${f}.${k}`, sloLevel: "high", seed: k })) });
        await sleep(2);
      }
      c.ws.resume();
      let picked = 0;
      let overloaded = 0;
      for (let f = 0; f < FRAMES; f++) {
        const frame = await c.next();
        expect(frame.items).toHaveLength(ITEMS);
        frame.items.forEach((item: { requestId?: string; error?: { code: string } }, k: number) => {
          if (item.error) {
            expect(item.error.code).toBe("OVERLOADED");
            overloaded++;
          } else {
            expect(item.requestId).toBe(`${paused}.${f}.${k}`);
            picked++;
          }
        });
      }
      expect(picked + overloaded).toBe(FRAMES * ITEMS);
      return overloaded;
    }
    expect(await run(false)).toBe(0);
    // Some 9 MB of answers: more than the socket buffers and SEND_HIGH_WATER_BYTES hold.
    expect(await run(true)).toBeGreaterThan(0);
  });

  it("a frame of more picks than maxInflightPerConnection is refused whole, and the connection carries on", async () => {
    const h = await start("{ maxInflightPerConnection: 3 }");
    const c = await connect(h);
    const item = (k: number) => ({ requestId: `f${k}`, sloLevel: "high", seed: k });
    c.send({ t: "pick", items: [1, 2, 3, 4].map(item) });
    c.send({ t: "pick", items: [5, 6, 7].map(item) });
    expect(await c.next()).toEqual({
      t: "error",
      error: { code: "REQUEST_INVALID", message: "frame.items: at most 3 picks a frame (server.maxInflightPerConnection), got 4" },
    });
    expect((await c.next()).items.map((i: { requestId: string }) => i.requestId)).toEqual(["f5", "f6", "f7"]);
    expect(h.engine.cluster.inflight.size).toBe(3);
  });

  it("answers an unknown level with at most 60 characters of it, however long it was", async () => {
    const h = await start();
    const c = await connect(h);
    c.send({ t: "pick", items: [{ sloLevel: "g".repeat(100_000) }] });
    const [answer] = (await c.next()).items;
    expect(answer.error).toEqual({ code: "UNKNOWN_LEVEL", message: `unknown SLO level "${"g".repeat(57)}..." (known: high, medium, low)` });
  });

  it("disconnects (1008) a client that keeps writing while some 64 MB of its answers wait unread", async () => {
    // The first frame's picks wait 100 ms for their batch, holding the whole bound meanwhile.
    const h = await start("{ maxInflightPerConnection: 4096 }", POOLS.replace("workers: { threads: 0 }", "workers: { threads: 0, batchWindowUs: 100000 }"));
    const c = await connect(h);
    const closed = new Promise<number>((resolve) => c.ws.once("close", (code: number) => resolve(code)));
    c.ws.pause();
    // Each frame: 4,096 picks, answered OVERLOADED while the bound is held (about 340 KB of answers),
    // which answers waiting unread keep it: 240 frames are some 80 MB.
    const frame = pack({ t: "pick", items: Array.from({ length: 4096 }, () => ({})) });
    for (let f = 0; f < 240; f++) c.ws.send(frame);
    // Read nothing until the server has taken in what it will (frames are timed as they are answered).
    const framesAnswered = async () => Number(/^headroom_pick_duration_seconds_count\{via="stream"\} (\d+)$/m.exec(await h.registry.metrics())?.[1] ?? 0);
    for (let seen = -1; ; ) {
      const now = await framesAnswered();
      if (now === seen) break;
      seen = now;
      // Long enough that a collection of the held answers (tens of MB) is not taken for the end.
      await sleep(500);
    }
    c.ws.resume();
    expect(await closed).toBe(1008);
  });

  it("a malformed frame gets an error frame and the connection carries on", async () => {
    const h = await start();
    const c = await connect(h);
    c.ws.send(Buffer.from([0x92, 0x01]));
    c.ws.send("not binary");
    c.send({ t: "pick", items: "all of them" });
    c.send({ t: "shout", items: [] });
    c.send([1, 2, 3]);
    c.send({ t: "pick", items: [{ sloLevel: "high" }] });
    expect((await c.next()).error.message).toMatch(/^frame: malformed msgpack/);
    expect((await c.next()).error.message).toMatch(/^frame: must be a binary msgpack frame/);
    expect((await c.next()).error.message).toMatch(/^frame\.items: must be an array/);
    expect((await c.next()).error.message).toMatch(/^frame\.t: must be "pick" or "report"/);
    expect(await c.next()).toEqual({ t: "error", error: { code: "REQUEST_INVALID", message: expect.stringMatching(/^frame: must be a map/) } });
    expect((await c.next()).items[0]).toMatchObject({ pool: "high" });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("counts the upgrade and times each frame of picks", async () => {
    const h = await start();
    const c = await connect(h);
    c.send({ t: "pick", items: [{ sloLevel: "high" }, { sloLevel: "medium" }] });
    await c.next();
    const text = await h.registry.metrics();
    expect(text).toMatch(/^headroom_http_requests_total\{route="\/v1\/stream",status="101"\} 1$/m);
    expect(text).toMatch(/^headroom_pick_duration_seconds_count\{via="stream"\} 1$/m);
  });

  it("close() sends a slow reader every answer, those still in uWebSockets.js's buffer included, then closes with 1001", async () => {
    const h = await startServer("{ maxInflightPerConnection: 1000 }");
    const c = await connect(h);
    let answered = 0;
    c.ws.on("message", () => answered++);
    const closed = new Promise<number>((resolve) => c.ws.once("close", (code: number) => resolve(code)));
    c.ws.pause();
    // Some 8 MB of answers (1,000 unknown levels a frame): more than the socket buffers hold, so the
    // last are still in the server's buffers when close() finds every frame answered.
    const FRAMES = 100;
    const frame = pack({ t: "pick", items: Array.from({ length: 1000 }, () => ({ sloLevel: "gold" })) });
    for (let f = 0; f < FRAMES; f++) c.ws.send(frame);
    const framesAnswered = async () => Number(/^headroom_pick_duration_seconds_count\{via="stream"\} (\d+)$/m.exec(await h.registry.metrics())?.[1] ?? 0);
    await expect.poll(framesAnswered, { timeout: 10_000 }).toBe(FRAMES);
    const closing = h.server.close();
    c.ws.resume();
    expect(await closed).toBe(1001);
    expect(answered).toBe(FRAMES);
    await closing;
    await h.engine.close();
  });

  it("while closing, a frame of picks is answered NOT_READY item by item and picks nothing, so close() waits only for what it owes", async () => {
    const h = await startServer("{}", POOLS.replace("workers: { threads: 0 }", "workers: { threads: 0, batchWindowUs: 100000 }"));
    const c = await connect(h);
    const closed = new Promise<number>((resolve) => c.ws.once("close", (code: number) => resolve(code)));
    c.send({ t: "pick", items: [{ requestId: "before", sloLevel: "high" }] });
    // The first frame's batch is waiting when close() begins (uWS answers a ping once it has read what came before it); the second frame arrives after.
    const pong = new Promise((resolve) => c.ws.once("pong", resolve));
    c.ws.ping();
    await pong;
    const closing = h.server.close();
    c.send({ t: "pick", items: [{ requestId: "after", sloLevel: "high" }, { sloLevel: "medium" }] });
    expect((await c.next()).items[0]).toMatchObject({ requestId: "before", pool: "high" });
    const refused = { error: { code: "NOT_READY", message: "the server is shutting down" } };
    expect(await c.next()).toEqual({ t: "picked", items: [refused, refused] });
    expect(await closed).toBe(1001);
    await closing;
    expect(h.engine.cluster.inflight.size).toBe(1);
    await h.engine.close();
  });

  it("picks whose connection closed before their answer release their load: no request follows them", async () => {
    const h = await start("{}", POOLS.replace("workers: { threads: 0 }", "workers: { threads: 0, batchWindowUs: 100000 }"));
    const c = await connect(h);
    c.send({ t: "pick", items: [{ sloLevel: "high" }, { sloLevel: "high" }, { sloLevel: "medium" }, { sloLevel: "gold" }] });
    const pong = new Promise((resolve) => c.ws.once("pong", resolve));
    c.ws.ping();
    await pong;
    c.ws.terminate();
    // The batch window ends, the picks are made, and their answer finds the connection gone.
    await expect.poll(async () => /^headroom_inflight_released_total\{reason="undelivered"\} (\d+)$/m.exec(await h.registry.metrics())?.[1], { timeout: 2000 }).toBe("3");
    expect(h.engine.cluster.inflight.size).toBe(0);
    const state = h.engine.state() as { pools: { pods: { inflight: { decodeRequests: number } }[] }[] };
    expect(state.pools.flatMap((p) => p.pods.map((pod) => pod.inflight.decodeRequests))).toEqual([0, 0, 0, 0, 0]);
  });

  it("close() lets unanswered picks be answered, then closes the connection with 1001", async () => {
    const h = await startServer("{}", POOLS.replace("workers: { threads: 0 }", "workers: { threads: 0, batchWindowUs: 100000 }"));
    const c = await connect(h);
    const closed = new Promise<number>((resolve) => c.ws.once("close", (code: number) => resolve(code)));
    c.send({ t: "pick", items: [{ sloLevel: "high" }] });
    await new Promise((resolve) => setTimeout(resolve, 30));
    await h.server.close();
    expect((await c.next()).items[0]).toMatchObject({ pool: "high" });
    expect(await closed).toBe(1001);
    await h.engine.close();
  });
});
