// Every HTTP endpoint of SPEC.md §7 on a real uWebSockets.js server and a real Engine over loopback:
// answers and their shapes, the error statuses with their JSON bodies, the admin token, and close().

import { pack, unpack } from "msgpackr";
import { once } from "node:events";
import { request } from "node:http";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { POOLS, postJson, startServer, type Harness } from "./fixtures/server-harness.js";
import { sleep } from "./fixtures/wait.js";

const TOKEN = "a-sixteen-char-token";
const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function start(server = "{}"): Promise<Harness> {
  const h = await startServer(server);
  harnesses.push(h);
  return h;
}

function expectError(res: { status: number; body: any }, status: number, code: string, message?: RegExp) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String) } });
  if (message) expect(res.body.error.message).toMatch(message);
}

describe("POST /v1/pick", () => {
  it("answers a JSON pick with the pair, predictions, headroom and gateway headers", async () => {
    const h = await start();
    const res = await postJson(`${h.url}/v1/pick`, { requestId: "p1", sloLevel: "high", inputTokens: 1000, maxTokens: 100, prefixHit: 0.2, seed: 1, explain: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const a = res.body;
    expect(a).toMatchObject({ requestId: "p1", pool: "high", outcome: "positive_headroom", decodeOnly: false });
    expect(["10.0.0.1:8000", "10.0.0.2:8000"]).toContain(a.prefill);
    expect(["10.0.0.3:8000", "10.0.0.4:8000"]).toContain(a.decode);
    expect(a.fallbacks).toEqual(expect.any(Array));
    expect(Object.keys(a.predicted).sort()).toEqual(["decodeTtftMs", "prefillTtftMs", "tpotMs", "transferMs", "ttftMs"]);
    expect(a.headroom.ttftMs).toBeCloseTo(300 * 0.9 - a.predicted.ttftMs, 6);
    expect(a.headers).toEqual({ "x-gateway-destination-endpoint": a.decode, "x-prefiller-host-port": a.prefill });
    expect(a.explain.length).toBe(4);
    expect(h.engine.cluster.inflight.size).toBe(1);
  });

  it("answers a msgpack pick in msgpack, errors included", async () => {
    const h = await start();
    const ok = await fetch(`${h.url}/v1/pick`, { method: "POST", headers: { "content-type": "application/msgpack" }, body: new Uint8Array(pack({ sloLevel: "medium", inputTokens: 100, seed: 3 })) });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("application/msgpack");
    const a = unpack(Buffer.from(await ok.arrayBuffer()));
    expect(a).toMatchObject({ pool: "medium", decode: "10.0.1.1:8000", decodeOnly: true });
    // Local prefill: no prefill address and no prefill header, not even as nil.
    expect(Object.hasOwn(a, "prefill")).toBe(false);
    expect(a.headers).toEqual({ "x-gateway-destination-endpoint": "10.0.1.1:8000" });

    const bad = await fetch(`${h.url}/v1/pick`, { method: "POST", headers: { "content-type": "application/msgpack" }, body: new Uint8Array(pack({ prefixHit: 2 })) });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toBe("application/msgpack");
    expect(unpack(Buffer.from(await bad.arrayBuffer()))).toEqual({ error: { code: "REQUEST_INVALID", message: expect.stringMatching(/^prefixHit: /) } });
  });

  it("an empty body picks in the default pool; a body not marked msgpack is JSON (curl -d's default type)", async () => {
    const h = await start();
    const res = await fetch(`${h.url}/v1/pick`, { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ pool: "medium", decode: "10.0.1.1:8000" });
    const form = await postJson(`${h.url}/v1/pick`, { sloLevel: "high" }, { "content-type": "application/x-www-form-urlencoded" });
    expect(form.body.pool).toBe("high");
  });

  it("SLO headers override the body's level and targets", async () => {
    const h = await start();
    const res = await postJson(`${h.url}/v1/pick`, { sloLevel: "medium", sloTtftMs: 5000, inputTokens: 500, seed: 2 }, { "x-slo-level": "HIGH", "x-slo-ttft-ms": "1000" });
    expect(res.status).toBe(200);
    expect(res.body.pool).toBe("high");
    // JSON times are rounded to the microsecond, so each side is within 0.0005 ms.
    expect(res.body.headroom.ttftMs).toBeCloseTo(1000 * 0.9 - res.body.predicted.ttftMs, 2);
    expect(res.body.headroom.tpotMs).toBeCloseTo(30 * 0.9 - res.body.predicted.tpotMs, 2);
    for (const t of Object.values(res.body.predicted)) expect(String(t)).toMatch(/^\d+(\.\d{1,3})?$/);
  });

  it("400 for malformed JSON, a bad field and an unknown level (naming the known ones); none changes state", async () => {
    const h = await start();
    expectError(await postJson(`${h.url}/v1/pick`, '{"sloLevel": "high"'), 400, "REQUEST_INVALID", /^body: malformed JSON/);
    expectError(await postJson(`${h.url}/v1/pick`, { inputTokens: -5 }), 400, "REQUEST_INVALID", /^inputTokens: must be an integer in \[0, /);
    expectError(await postJson(`${h.url}/v1/pick`, { seed: 1.5 }), 400, "REQUEST_INVALID", /^seed: /);
    expectError(await postJson(`${h.url}/v1/pick`, {}, { "x-slo-tpot-ms": "fast" }), 400, "REQUEST_INVALID", /^header x-slo-tpot-ms: /);
    expectError(await postJson(`${h.url}/v1/pick`, { slo_level: "gold" }), 400, "UNKNOWN_LEVEL", /unknown SLO level "gold" \(known: high, medium, low\)/);
    expect(h.engine.cluster.inflight.size).toBe(0);
  });

  it("429 for a sheddable pick no pair can serve; 503 for a pool without pods", async () => {
    const h = await start();
    expectError(await postJson(`${h.url}/v1/pick`, { sloLevel: "high", sloTtftMs: 0.001, priority: -1, seed: 1 }), 429, "SHED");
    expectError(await postJson(`${h.url}/v1/pick`, { sloLevel: "low" }), 503, "NO_CANDIDATES", /pool low/);
    expect(h.engine.cluster.inflight.size).toBe(0);
  });

  it("413 for a body over maxBodyBytes, whether or not it declares its length", async () => {
    const h = await start("{ maxBodyBytes: 1024 }");
    expectError(await postJson(`${h.url}/v1/pick`, JSON.stringify({ prompt: "x".repeat(2000) })), 413, "BODY_TOO_LARGE", /limit of 1024 bytes/);
    // A chunked upload has no content-length: the chunk that crosses the limit ends it.
    const chunks = new ReadableStream({
      start(c) {
        for (let i = 0; i < 64; i++) c.enqueue(new TextEncoder().encode(" ".repeat(512)));
        c.close();
      },
    });
    const streamed = await fetch(`${h.url}/v1/pick`, { method: "POST", headers: { "content-type": "application/json" }, body: chunks, duplex: "half" } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await streamed.json()).error.code).toBe("BODY_TOO_LARGE");
    // The server is still serving.
    expect((await postJson(`${h.url}/v1/pick`, {})).status).toBe(200);
  });
});

describe("/v1/gateway/pick", () => {
  it("answers with headers only: destination, prefiller, fallbacks, pool, request id", async () => {
    const h = await start();
    const res = await fetch(`${h.url}/v1/gateway/pick`, { headers: { "x-slo-level": "high", "x-request-id": "g1", "x-prompt-tokens": "800" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    expect(["10.0.0.3:8000", "10.0.0.4:8000"]).toContain(res.headers.get("x-gateway-destination-endpoint"));
    expect(["10.0.0.1:8000", "10.0.0.2:8000"]).toContain(res.headers.get("x-prefiller-host-port"));
    expect(res.headers.get("x-headroom-fallback-endpoints")).toMatch(/^10\.0\.0\.[34]:8000$/);
    expect(res.headers.get("x-headroom-pool")).toBe("high");
    expect(res.headers.get("x-headroom-request-id")).toBe("g1");
  });

  it("leaves x-prefiller-host-port out for local prefill; takes any method and the original path (ext_authz)", async () => {
    const h = await start();
    for (const method of ["GET", "POST", "DELETE"]) {
      const res = await fetch(`${h.url}/v1/gateway/pick/v1/chat/completions?stream=true`, {
        method,
        headers: { "x-slo-level": "medium", "x-original-content-length": "4000" },
        body: method === "POST" ? '{"prompt":"ignored"}' : undefined,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-gateway-destination-endpoint")).toBe("10.0.1.1:8000");
      expect(res.headers.has("x-prefiller-host-port")).toBe(false);
      // So that Envoy drops a client's own: ext_authz keeps request headers the answer does not name.
      expect(res.headers.get("x-envoy-auth-headers-to-remove")).toBe("x-prefiller-host-port");
      expect(res.headers.has("x-headroom-fallback-endpoints")).toBe(false);
    }
    expect(h.engine.cluster.inflight.size).toBe(3);
  });

  it("400 for a bad header, 429 when shed, 503 without pods, with the code in a header too", async () => {
    const h = await start();
    const get = async (headers: Record<string, string>) => {
      const res = await fetch(`${h.url}/v1/gateway/pick`, { headers });
      return { status: res.status, code: res.headers.get("x-headroom-error-code"), retryAfter: res.headers.get("retry-after"), body: await res.json() };
    };
    const bad = await get({ "x-slo-ttft-ms": "-1" });
    expectError(bad, 400, "REQUEST_INVALID", /^header x-slo-ttft-ms: /);
    expect(bad.code).toBe("REQUEST_INVALID");
    expect(bad.retryAfter).toBeNull();
    expectError(await get({ "x-slo-level": "platinum" }), 400, "UNKNOWN_LEVEL", /known: high, medium, low/);
    // The message in a header too (nginx drops the body), safe inside a JSON string: no quotes, ASCII.
    const quoted = await fetch(`${h.url}/v1/gateway/pick`, { headers: { "x-slo-level": 'pla"t\\inum' } });
    expect(quoted.headers.get("x-headroom-error-message")).toBe("unknown SLO level 'pla/'t//inum' (known: high, medium, low)");
    const shed = await get({ "x-slo-level": "high", "x-slo-ttft-ms": "0.001", "x-headroom-priority": "-1" });
    expectError(shed, 429, "SHED");
    expect(shed.code).toBe("SHED");
    expect(shed.retryAfter).toBe("1");
    const none = await get({ "x-slo-level": "low" });
    expectError(none, 503, "NO_CANDIDATES");
    expect(none.code).toBe("NO_CANDIDATES");
    expect(none.retryAfter).toBe("1");
  });
});

describe("route, report, pods", () => {
  it("POST /v1/route answers the pool, its targets and priority; unknown levels are 400", async () => {
    const h = await start();
    expect((await postJson(`${h.url}/v1/route`, { sloLevel: "high" })).body).toEqual({ pool: "high", targets: { ttftMs: 300, tpotMs: 30 }, sloPriority: 1 });
    expect((await postJson(`${h.url}/v1/route`, {})).body.pool).toBe("medium");
    expect((await postJson(`${h.url}/v1/route`, { slo_level: "low" }, { "x-slo-level": "high" })).body.pool).toBe("high");
    expectError(await postJson(`${h.url}/v1/route`, { sloLevel: "gold" }), 400, "UNKNOWN_LEVEL", /known: high, medium, low/);
  });

  it("POST /v1/report releases picks, one or many; a list with one bad report applies none", async () => {
    const h = await start();
    for (const id of ["r1", "r2", "r3"]) expect((await postJson(`${h.url}/v1/pick`, { requestId: id, sloLevel: "high", seed: 1 })).status).toBe(200);
    expect(h.engine.cluster.inflight.size).toBe(3);
    const bad = await postJson(`${h.url}/v1/report`, { reports: [{ requestId: "r1", ok: true }, { requestId: "r2", ok: "yes" }] });
    expectError(bad, 400, "REQUEST_INVALID", /^reports\[1\]\.ok: /);
    expect(h.engine.cluster.inflight.size).toBe(3);
    expect((await postJson(`${h.url}/v1/report`, { requestId: "r1", ok: true, ttftMs: 40, tpotMs: 5, inputTokens: 100, outputTokens: 10 })).body).toEqual({ known: 1, unknown: 0 });
    expect(h.engine.cluster.inflight.size).toBe(2);
    const many = await fetch(`${h.url}/v1/report`, {
      method: "POST",
      headers: { "content-type": "application/msgpack" },
      body: new Uint8Array(pack({ reports: [{ requestId: "r2", ok: false }, { requestId: "r3", ok: true }, { requestId: "nobody", ok: true }] })),
    });
    expect(unpack(Buffer.from(await many.arrayBuffer()))).toEqual({ known: 2, unknown: 1 });
    expect(h.engine.cluster.inflight.size).toBe(0);
  });

  it("PUT and DELETE /v1/pods need the admin token when one is configured", async () => {
    const h = await start(`{ adminToken: "${TOKEN}" }`);
    const pod = { address: "10.0.2.1:8000", pool: "low", role: "both" };
    const noToken = await postJson(`${h.url}/v1/pods`, pod, {}, "PUT");
    expectError(noToken, 401, "UNAUTHORIZED");
    expect(noToken.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expectError(await postJson(`${h.url}/v1/pods`, pod, { authorization: "Bearer wrong-token-of-some-length" }, "PUT"), 401, "UNAUTHORIZED");
    expectError(await postJson(`${h.url}/v1/pods/10.0.0.1:8000`, "", {}, "DELETE"), 401, "UNAUTHORIZED");
    // In the request's format, as every error is.
    const packed = await fetch(`${h.url}/v1/pods`, { method: "PUT", headers: { "content-type": "application/msgpack" }, body: new Uint8Array(pack(pod)) });
    expect(packed.status).toBe(401);
    expect(packed.headers.get("content-type")).toBe("application/msgpack");
    expect(unpack(new Uint8Array(await packed.arrayBuffer()))).toEqual({ error: { code: "UNAUTHORIZED", message: expect.stringMatching(/Bearer/) } });
    expect((await fetch(`${h.url}/readyz`)).status).toBe(503);

    const auth = { authorization: `Bearer ${TOKEN}` };
    expect(await postJson(`${h.url}/v1/pods`, { pods: [pod] }, auth, "PUT")).toMatchObject({ status: 200, body: { upserted: 1 } });
    await expect.poll(async () => (await fetch(`${h.url}/readyz`)).status).toBe(200);
    const picked = await postJson(`${h.url}/v1/pick`, { sloLevel: "low" });
    expect(picked.body.decode).toBe("10.0.2.1:8000");

    expectError(await postJson(`${h.url}/v1/pods`, { ...pod, pool: "nowhere" }, auth, "PUT"), 400, "UNKNOWN_POOL", /unknown pool "nowhere"/);
    expectError(await postJson(`${h.url}/v1/pods`, { ...pod, role: "chef" }, auth, "PUT"), 400, "REQUEST_INVALID", /^pods\[0\]\.role: .*, got "chef"$/);
    // Each refusal names the field at fault, and shows no more than a shortened value.
    expectError(await postJson(`${h.url}/v1/pods`, { pods: [pod, { ...pod, extra: 1 }] }, auth, "PUT"), 400, "REQUEST_INVALID", /^pods\[1\]\.extra: unknown key, got 1$/);
    expectError(await postJson(`${h.url}/v1/pods`, { ...pod, address: `${"a".repeat(300)}:1` }, auth, "PUT"), 400, "REQUEST_INVALID", /^pods\[0\]\.address: .*at most 260 characters/);
    const longPool = await postJson(`${h.url}/v1/pods`, { ...pod, pool: "p".repeat(50_000) }, auth, "PUT");
    expectError(longPool, 400, "UNKNOWN_POOL", /^pods\[0\]\.pool: unknown pool "p+\.\.\. \(known: high, medium, low\)$/);
    expect(JSON.stringify(longPool.body).length).toBeLessThan(300);
    const del = await fetch(`${h.url}/v1/pods/10.0.2.1%3A8000`, { method: "DELETE", headers: auth });
    expect(await del.json()).toEqual({ deleted: "10.0.2.1:8000" });
    expectError(await postJson(`${h.url}/v1/pods/10.9.9.9:1`, "", auth, "DELETE"), 404, "NOT_FOUND", /10\.9\.9\.9:1/);
  });

  it("without a configured token, pods can be pushed without one", async () => {
    const h = await start();
    expect((await postJson(`${h.url}/v1/pods`, { address: "10.0.2.1:8000", pool: "low", role: "both" }, {}, "PUT")).status).toBe(200);
  });
});

describe("introspection", () => {
  it("healthz, readyz with reasons, state, planner", async () => {
    const h = await start();
    expect(await (await fetch(`${h.url}/healthz`)).json()).toEqual({ status: "ok" });
    const head = await fetch(`${h.url}/healthz`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    const ready = await fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get("retry-after")).toBe("1");
    expect(await ready.json()).toEqual({
      ready: false,
      reasons: [expect.stringMatching(/^pool low: no candidate pair/)],
      error: { code: "NOT_READY", message: expect.stringMatching(/pool low/) },
    });
    // The replica itself is ready: an empty pool is the cluster's state, and every replica sees it.
    const replica = await fetch(`${h.url}/readyz?scope=replica`);
    expect(replica.status).toBe(200);
    expect(await replica.json()).toEqual({ ready: true, reasons: [] });
    const unknownScope = await fetch(`${h.url}/readyz?scope=cluster`);
    expectError({ status: unknownScope.status, body: await unknownScope.json() }, 400, "REQUEST_INVALID", /scope: must be "replica" or absent/);
    const state = await (await fetch(`${h.url}/v1/state`)).json();
    expect(state.pools.map((p: { name: string }) => p.name)).toEqual(["high", "medium", "low"]);
    expect(state.pools[0].pods[0]).toMatchObject({ address: "10.0.0.1:8000", freshness: "unscraped", eligible: true });
    expect(await (await fetch(`${h.url}/v1/planner`)).json()).toEqual(expect.any(Object));
  });

  it("HEAD answers without a body or a length it will not send, and the connection carries on", async () => {
    const h = await start();
    const { port } = new URL(h.url);
    const socket = connect(Number(port), "127.0.0.1");
    let text = "";
    socket.setEncoding("latin1").on("data", (chunk: string) => (text += chunk));
    const answers = (n: number) => expect.poll(() => text.split("HTTP/1.1 ").length - 1, { timeout: 2000 }).toBe(n);
    // One keep-alive connection, as a load balancer's probes or a proxy use it.
    socket.write("HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    await answers(1);
    socket.write("HEAD /v1/gateway/pick HTTP/1.1\r\nhost: x\r\nx-slo-level: high\r\n\r\n");
    await answers(2);
    socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    await answers(3);
    await expect.poll(() => text.endsWith('{"status":"ok"}'), { timeout: 2000 }).toBe(true);
    const [head, gateway] = text.split("HTTP/1.1 ").slice(1);
    expect(head).toMatch(/^200 OK\r\n/);
    expect(gateway).toMatch(/^200 OK\r\n/);
    expect(gateway.toLowerCase()).toContain("x-headroom-pool: high\r\n");
    for (const answer of [head, gateway]) expect(answer.toLowerCase()).not.toContain("content-length");
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  });

  it("GET /metrics is Prometheus text with the engine's and the server's metrics", async () => {
    const h = await start();
    await postJson(`${h.url}/v1/pick`, { sloLevel: "high" });
    await postJson(`${h.url}/v1/pick`, { sloLevel: "gold" });
    await fetch(`${h.url}/nowhere/at/all`);
    const res = await fetch(`${h.url}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^llm_d_inference_scheduler_pd_slo_pair_selections_total\{outcome="positive_headroom"\} 1$/m);
    expect(text).toMatch(/^headroom_http_requests_total\{route="\/v1\/pick",status="200"\} 1$/m);
    expect(text).toMatch(/^headroom_http_requests_total\{route="\/v1\/pick",status="400"\} 1$/m);
    expect(text).toMatch(/^headroom_http_requests_total\{route="unmatched",status="404"\} 1$/m);
    expect(text).toMatch(/^headroom_pick_duration_seconds_bucket\{le="0\.000025",via="pick"\} \d+$/m);
    expect(text).toMatch(/^headroom_pick_duration_seconds_count\{via="pick"\} 2$/m);
    // Static pods without a metrics URL: unscraped, and eligible; the low pool has none.
    expect(text).toMatch(/^headroom_pods\{pool="high",freshness="unscraped"\} 4$/m);
    expect(text).toMatch(/^headroom_pods\{pool="high",freshness="fresh"\} 0$/m);
    expect(text).toMatch(/^headroom_pods_eligible\{pool="high"\} 4$/m);
    expect(text).toMatch(/^headroom_pods_eligible\{pool="low"\} 0$/m);
    expect(text).toMatch(/^headroom_worker_batches\{state="queued"\} 0$/m);
  });

  it("GET /metrics counts the main thread's busy time", async () => {
    const h = await start();
    const busySeconds = async () => Number(/^headroom_main_thread_busy_seconds_total (\S+)$/m.exec(await (await fetch(`${h.url}/metrics`)).text())?.[1]);
    const before = await busySeconds();
    // The server shares this thread: 100 ms of work here is 100 ms of its main thread's.
    const until = performance.now() + 100;
    while (performance.now() < until);
    const after = await busySeconds();
    expect(before).toBeGreaterThan(0);
    expect(after - before).toBeGreaterThanOrEqual(0.1);
  });

  it("404 for an unknown path, 405 with Allow for a wrong method, both with the JSON error body", async () => {
    const h = await start();
    expectError(await postJson(`${h.url}/v2/pick`, {}), 404, "NOT_FOUND", /\/v2\/pick/);
    const wrong = await fetch(`${h.url}/v1/pick`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
    expect(await wrong.json()).toEqual({ error: { code: "METHOD_NOT_ALLOWED", message: "GET /v1/pick: allowed POST" } });
    const put = await postJson(`${h.url}/metrics`, {}, {}, "PUT");
    expectError(put, 405, "METHOD_NOT_ALLOWED");
    expect(put.headers.get("allow")).toBe("GET, HEAD");
    expectError(await postJson(`${h.url}/v1/pods/x:1`, {}, {}, "PUT"), 405, "METHOD_NOT_ALLOWED");
    expectError(await postJson(`${h.url}/v1/stream`, {}), 405, "METHOD_NOT_ALLOWED");
    expectError({ status: (await fetch(`${h.url}/v1/stream`)).status, body: { error: { code: "REQUEST_INVALID", message: "" } } }, 400, "REQUEST_INVALID");
    // A msgpack client gets them in msgpack, as every other error.
    for (const [path, method, status, code] of [
      ["/v2/pick", "POST", 404, "NOT_FOUND"],
      ["/v1/pick", "PUT", 405, "METHOD_NOT_ALLOWED"],
    ] as const) {
      const packed = await fetch(`${h.url}${path}`, { method, headers: { "content-type": "application/msgpack" }, body: new Uint8Array(pack({})) });
      expect(packed.status).toBe(status);
      expect(packed.headers.get("content-type")).toBe("application/msgpack");
      expect((unpack(new Uint8Array(await packed.arrayBuffer())) as { error: { code: string } }).error.code).toBe(code);
    }
  });
});

describe("aborts and close", () => {
  /** Picks wait up to 100 ms for their batch, long enough to abort or close meanwhile. */
  const SLOW_POOLS = POOLS.replace("workers: { threads: 0 }", "workers: { threads: 0, batchWindowUs: 100000 }");

  it("clients that disconnect mid-body or while their pick is pending leave the server serving, owing nothing", async () => {
    const h = await startServer("{}", SLOW_POOLS);
    await new Promise<void>((resolve) => {
      const req = request(`${h.url}/v1/pick`, { method: "POST", headers: { "content-type": "application/json", "content-length": "5000" } });
      req.on("error", () => resolve());
      req.write('{"prompt":"');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 20);
    });
    const ac = new AbortController();
    const pending = fetch(`${h.url}/v1/pick`, { method: "POST", body: "{}", signal: ac.signal }).catch(() => "aborted");
    await sleep(30);
    ac.abort();
    expect(await pending).toBe("aborted");
    expect((await postJson(`${h.url}/v1/pick`, { sloLevel: "high" })).status).toBe(200);
    // The aborted pick was made with the next one's batch, and released: no request follows it.
    expect(h.engine.cluster.inflight.size).toBe(1);
    expect(/^headroom_inflight_released_total\{reason="undelivered"\} (\d+)$/m.exec(await h.registry.metrics())?.[1]).toBe("1");
    // Nothing left counted as in flight: close() does not wait for its grace period.
    const startedMs = performance.now();
    await h.close();
    expect(performance.now() - startedMs).toBeLessThan(1000);
  });

  it("while closing, a gateway pick on an open connection is refused with the code in headers, as nginx needs it", async () => {
    const h = await start();
    const { port } = new URL(h.url);
    // A proxy's keep-alive connection, open before the close.
    const kept = connect(Number(port), "127.0.0.1");
    let text = "";
    kept.setEncoding("latin1").on("data", (chunk: string) => (text += chunk));
    kept.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    await expect.poll(() => text.endsWith('{"status":"ok"}'), { timeout: 2000 }).toBe(true);
    // A body still arriving keeps the close waiting.
    const slow = connect(Number(port), "127.0.0.1");
    slow.on("error", () => undefined);
    slow.write('POST /v1/pick HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{"prompt":"');
    await sleep(30);
    // A kubelet's probes, on connections open before the close.
    const probes = ["/readyz", "/healthz"].map((path) => {
      const socket = connect(Number(port), "127.0.0.1");
      const probe = { path, socket, text: "" };
      socket.setEncoding("latin1").on("data", (chunk: string) => (probe.text += chunk));
      return probe;
    });
    await Promise.all(probes.map((p) => once(p.socket, "connect")));
    const closing = h.server.close();
    text = "";
    kept.write("GET /v1/gateway/pick HTTP/1.1\r\nhost: x\r\nx-slo-level: high\r\n\r\n");
    await expect.poll(() => text.includes('"NOT_READY"'), { timeout: 2000 }).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 503 /);
    expect(text.toLowerCase()).toContain("x-headroom-error-code: not_ready\r\n");
    expect(text.toLowerCase()).toContain("x-headroom-error-message: the server is shutting down\r\n");
    // Still alive while it finishes what it owes; not ready, saying why.
    for (const p of probes) p.socket.write(`GET ${p.path} HTTP/1.1\r\nhost: x\r\n\r\n`);
    await Promise.all(probes.map((p) => once(p.socket, "end")));
    const [ready, healthy] = probes.map((p) => p.text);
    expect(ready).toMatch(/^HTTP\/1\.1 503 /);
    const readiness = JSON.parse(ready.slice(ready.indexOf("\r\n\r\n") + 4)) as { ready: boolean; reasons: string[]; error: { code: string } };
    expect([readiness.ready, readiness.reasons[0], readiness.error.code]).toEqual([false, "server shutting down", "NOT_READY"]);
    expect(healthy).toMatch(/^HTTP\/1\.1 200 /);
    expect(healthy.endsWith('{"status":"ok"}')).toBe(true);
    kept.destroy();
    slow.destroy();
    await closing;
    await h.engine.close();
  });

  it("close() stops accepting, lets a pick in flight finish, then closes", async () => {
    const h = await startServer("{}", SLOW_POOLS);
    const inFlight = postJson(`${h.url}/v1/pick`, { sloLevel: "high" });
    await sleep(30);
    const closing = h.server.close();
    const answered = await inFlight;
    expect(answered.status).toBe(200);
    expect(answered.body.pool).toBe("high");
    await closing;
    await expect(fetch(`${h.url}/healthz`)).rejects.toThrow();
    await h.engine.close();
  });
});
