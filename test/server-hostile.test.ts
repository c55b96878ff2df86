// Hostile bodies (random bytes, random JSON, random msgpack, near-valid picks and reports) sent to
// /v1/pick and /v1/report on a real server: always 200 or a 4xx error body, the server keeps serving
// and logs no internal error, and a rejected request changes no state (the in-flight table).

import fc from "fast-check";
import { pack, unpack } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type Harness } from "./fixtures/server-harness.js";

// No empty pool (whose picks are 503) and in-flight entries that outlive the test.
const POOLS = `
pools:
  - sloLevel: high
    pods:
      - { address: "10.0.0.1:8000", role: prefill }
      - { address: "10.0.0.2:8000", role: decode }
  - sloLevel: medium
    pods:
      - { address: "10.0.1.1:8000", role: both }
workers: { threads: 0 }
pods: { inflightTtlFactor: 1000000 }
`;
const RUNS = 150;

let h: Harness;
beforeAll(async () => {
  h = await startServer("{ maxBodyBytes: 4096 }", POOLS);
});
afterAll(async () => {
  await h.close();
});

type Format = "json" | "msgpack";

async function post(path: string, body: Uint8Array | string, format: Format) {
  const res = await fetch(`${h.url}${path}`, { method: "POST", headers: { "content-type": format === "json" ? "application/json" : "application/msgpack" }, body: typeof body === "string" ? body : new Uint8Array(body) });
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(res.headers.get("content-type")).toBe(format === "json" ? "application/json" : "application/msgpack");
  return { status: res.status, body: format === "json" ? JSON.parse(bytes.toString("utf8")) : unpack(bytes) };
}

function expectErrorBody(body: any) {
  expect(Object.keys(body)).toEqual(["error"]);
  expect(typeof body.error.code).toBe("string");
  expect(typeof body.error.message).toBe("string");
}

/** Values of every type, and near-misses of the valid ones. */
const hostileValue = fc.oneof(
  fc.constantFrom(null, true, false, "", "high", "HIGH", "medium", "gold", -1, 0, 0.5, 1, 1.5, 2 ** 32, -(2 ** 53), 1e308, Number.MAX_VALUE),
  fc.double(),
  fc.integer(),
  fc.string(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.integer(), { maxKeys: 2 }),
);

const pickBody = fc.record(
  {
    requestId: fc.oneof(fc.string({ maxLength: 20 }), hostileValue),
    model: hostileValue,
    prompt: fc.oneof(fc.string({ maxLength: 200 }), hostileValue),
    inputTokens: fc.oneof(fc.nat(100_000), hostileValue),
    maxTokens: fc.oneof(fc.nat(4096), hostileValue),
    prefixHit: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), hostileValue),
    sloTtftMs: fc.oneof(fc.double({ min: 0.001, max: 5000, noNaN: true }), hostileValue),
    sloTpotMs: fc.oneof(fc.double({ min: 0.001, max: 500, noNaN: true }), hostileValue),
    sloLevel: fc.oneof(fc.constantFrom("high", "medium", "High"), hostileValue),
    slo_level: fc.oneof(fc.constantFrom("high", "medium"), hostileValue),
    priority: fc.oneof(fc.integer({ min: -2, max: 2 }), hostileValue),
    seed: fc.oneof(fc.nat(), hostileValue),
    explain: fc.oneof(fc.boolean(), hostileValue),
  },
  { requiredKeys: [] },
);

/** A body to send and its declared format: raw bytes, random JSON, random msgpack, or a near-valid pick. */
const hostileBody = (structured: fc.Arbitrary<unknown>) =>
  fc.oneof(
    fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.constantFrom<Format>("json", "msgpack")),
    fc.tuple(fc.json(), fc.constant<Format>("json")),
    fc.tuple(fc.anything().map((v) => pack(v)), fc.constant<Format>("msgpack")),
    fc.tuple(structured.map((v) => JSON.stringify(v)), fc.constant<Format>("json")),
    fc.tuple(structured.map((v) => pack(v)), fc.constant<Format>("msgpack")),
  );

describe("hostile bodies", () => {
  it("/v1/pick: 200 with a pick, or a 4xx error; only a 200 adds to the in-flight table", async () => {
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(hostileBody(pickBody), async ([body, format]) => {
        const before = h.engine.cluster.inflight.size;
        const res = await post("/v1/pick", body, format);
        statuses.add(res.status);
        if (res.status === 200) {
          expect(typeof res.body.decode).toBe("string");
          expect(h.engine.cluster.inflight.size).toBe(before + 1);
        } else {
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expectErrorBody(res.body);
          expect(h.engine.cluster.inflight.size).toBe(before);
        }
      }),
      { numRuns: RUNS },
    );
    // The generators reach both sides.
    expect(statuses).toContain(200);
    expect(statuses).toContain(400);
  });

  it("/v1/report: 200 or 400; a rejected report (even one bad item among good ones) releases nothing", async () => {
    const ids: string[] = [];
    for (let k = 0; k < 60; k++) {
      const res = await post("/v1/pick", JSON.stringify({ requestId: `live-${k}`, sloLevel: "high" }), "json");
      expect(res.status).toBe(200);
      ids.push(`live-${k}`);
    }
    /** Mostly valid fields, so some lists are wholly valid and others hide one bad item. */
    const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: hostileValue });
    const report = fc.record(
      {
        requestId: mostly(fc.constantFrom(...ids)),
        ok: mostly(fc.boolean()),
        ttftMs: mostly(fc.double({ min: 0, max: 1000, noNaN: true })),
        tpotMs: mostly(fc.double({ min: 0, max: 100, noNaN: true })),
        inputTokens: mostly(fc.nat(10_000)),
        outputTokens: mostly(fc.nat(1000)),
        decode: mostly(fc.constant("10.0.0.2:8000")),
      },
      { requiredKeys: ["requestId", "ok"] },
    );
    const reports = fc.oneof(report, fc.record({ reports: fc.array(report, { maxLength: 6 }) }));
    let released = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(hostileBody(reports), async ([body, format]) => {
        const before = h.engine.cluster.inflight.size;
        const res = await post("/v1/report", body, format);
        if (res.status === 200) {
          expect(res.body).toEqual({ known: expect.any(Number), unknown: expect.any(Number) });
          expect(h.engine.cluster.inflight.size).toBe(before - res.body.known);
          released += res.body.known;
        } else {
          rejected++;
          expect(res.status).toBe(400);
          expectErrorBody(res.body);
          expect(h.engine.cluster.inflight.size).toBe(before);
        }
      }),
      { numRuns: RUNS },
    );
    expect(released).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
  });

  it("a msgpack bigint of any length is named by its size, never written out (a 900 KB one took a second and a 2 MB answer)", async () => {
    /** msgpackr's bigint extension (0x42): `bytes` of big-endian two's complement. */
    const bigint = (bytes: number) => Buffer.concat([Buffer.from([0xc8, bytes >> 8, bytes & 0xff, 0x42]), Buffer.alloc(bytes, 0x7f)]);
    const inputTokens = (value: Buffer) => Buffer.concat([pack({ inputTokens: 0 }).subarray(0, -1), value]);
    const before = h.engine.cluster.inflight.size;
    const alone = await post("/v1/pick", inputTokens(bigint(4000)), "msgpack");
    expect(alone).toEqual({ status: 400, body: { error: { code: "REQUEST_INVALID", message: "inputTokens: must be an integer in [0, 10000000], got a bigint beyond 64 bits" } } });
    const inList = await post("/v1/pick", inputTokens(Buffer.concat([Buffer.from([0x91]), bigint(4000)])), "msgpack");
    expect(inList.body.error.message).toBe('inputTokens: must be an integer in [0, 10000000], got ["a bigint beyond 64 bits"]');
    // An array that holds itself and a bigint (msgpackr's structured-clone id and pointer extensions).
    const cyclic = Buffer.concat([Buffer.from([0xd6, 0x69, 0, 0, 0, 1, 0x92, 0xd6, 0x70, 0, 0, 0, 1]), bigint(4000)]);
    const inCycle = await post("/v1/pick", inputTokens(cyclic), "msgpack");
    expect(inCycle.body.error.message).toBe("inputTokens: must be an integer in [0, 10000000], got a value nested too deeply or containing itself");
    // One that fits 64 bits is still shown as it is.
    const small = await post("/v1/pick", inputTokens(bigint(8)), "msgpack");
    expect(small.body.error.message).toBe(`inputTokens: must be an integer in [0, 10000000], got ${0x7f7f7f7f7f7f7f7fn}n`);
    expect(h.engine.cluster.inflight.size).toBe(before);
  });

  it("a field nested deeper than JSON.stringify can write is a 400 naming the field, not a 500", async () => {
    // JSON.parse takes any depth; 200,000 arrays are 400 KB, within the default maxBodyBytes.
    const deep = await startServer("{}", POOLS);
    try {
      const depth = 200_000;
      const res = await fetch(`${deep.url}/v1/pick`, { method: "POST", body: `{"inputTokens":${"[".repeat(depth)}${"]".repeat(depth)}}` });
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 400,
        body: { error: { code: "REQUEST_INVALID", message: "inputTokens: must be an integer in [0, 10000000], got a value nested too deeply or containing itself" } },
      });
      expect(deep.logger.lines.filter((l) => l.level === "error")).toEqual([]);
    } finally {
      await deep.close();
    }
  });

  it("after all of it the server still serves and logged no internal error", async () => {
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    expect(h.logger.lines.filter((l) => l.level === "error")).toEqual([]);
  });
});
