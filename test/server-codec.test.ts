// The server's wire formats without a server: bodies, SLO and gateway headers, reports, pods and stream
// frames decode into engine shapes or fail with a message naming the field; the error table.

import fc from "fast-check";
import { pack, unpack } from "msgpackr";
import { describe, expect, it } from "vitest";
import type { PickAnswer } from "../src/engine/types.js";
import { HeadroomError, RequestError, type ErrorCode } from "../src/errors.js";
import {
  bodyFormat,
  decodeAddressParam,
  decodeBody,
  decodeFrame,
  decodeGatewayPick,
  decodePick,
  decodePods,
  decodeReports,
  decodeRouteLevel,
  encodePickAnswer,
  NO_SLO_HEADERS,
  type GatewayHeaders,
} from "../src/server/codec.js";
import { errorBody, STATUS_OF_CODE, toWireError } from "../src/server/errors.js";

const headers = (h: Partial<GatewayHeaders>): GatewayHeaders => ({
  level: "",
  ttftMs: "",
  tpotMs: "",
  requestId: "",
  promptTokens: "",
  originalContentLength: "",
  priority: "",
  ...h,
});

/** The RequestError message `fn` throws. */
function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RequestError);
    return (err as Error).message;
  }
  throw new Error("expected a RequestError");
}

describe("error table", () => {
  it("maps each code to its status; only HeadroomErrors keep their message", () => {
    const expected: Partial<Record<ErrorCode | "INTERNAL", number>> = {
      REQUEST_INVALID: 400,
      UNKNOWN_LEVEL: 400,
      UNKNOWN_POOL: 400,
      UNAUTHORIZED: 401,
      NOT_FOUND: 404,
      METHOD_NOT_ALLOWED: 405,
      BODY_TOO_LARGE: 413,
      UNSUPPORTED_MEDIA_TYPE: 415,
      SHED: 429,
      NO_CANDIDATES: 503,
      OVERLOADED: 503,
      WORKER_FAILED: 503,
      NOT_READY: 503,
      INTERNAL: 500,
    };
    expect(STATUS_OF_CODE).toMatchObject(expected);
    expect(Object.values(STATUS_OF_CODE).every((s) => s >= 400 && s <= 599)).toBe(true);
    expect(toWireError(new HeadroomError("SHED", "shed it"))).toEqual({ code: "SHED", message: "shed it" });
    expect(toWireError(new TypeError("secret internals"))).toEqual({ code: "INTERNAL", message: expect.not.stringContaining("secret") });
    expect(errorBody({ code: "NOT_FOUND", message: "m" })).toEqual({ error: { code: "NOT_FOUND", message: "m" } });
  });
});

describe("bodies", () => {
  it("picks the format from the content type", () => {
    expect(bodyFormat("")).toBe("json");
    expect(bodyFormat("application/json; charset=utf-8")).toBe("json");
    expect(bodyFormat("application/vnd.api+json")).toBe("json");
    expect(bodyFormat("Application/MsgPack")).toBe("msgpack");
    expect(bodyFormat("application/x-msgpack")).toBe("msgpack");
    expect(bodyFormat("application/x-www-form-urlencoded")).toBe("json");
  });

  it("decodes JSON and msgpack; empty is undefined; garbage and deep nesting are RequestErrors", () => {
    expect(decodeBody(Buffer.from('{"a":1}'), "json")).toEqual({ a: 1 });
    expect(decodeBody(pack({ a: [1, "x"] }), "msgpack")).toEqual({ a: [1, "x"] });
    // 100 as a msgpack int64 and uint64 (Go's vmihailenco/msgpack writes every int so): a number, not 100n.
    const int64 = Buffer.from([0x81, 0xab, ...Buffer.from("inputTokens"), 0xd3, 0, 0, 0, 0, 0, 0, 0, 100]);
    const uint64 = Buffer.from([0x81, 0xab, ...Buffer.from("inputTokens"), 0xcf, 0, 0, 0, 0, 0, 0, 0, 100]);
    expect(decodePick(decodeBody(int64, "msgpack")).inputTokens).toBe(100);
    expect(decodePick(decodeBody(uint64, "msgpack")).inputTokens).toBe(100);
    expect(decodeBody(new Uint8Array(0), "json")).toBeUndefined();
    expect(rejection(() => decodeBody(Buffer.from("{nope"), "json"))).toMatch(/^body: malformed JSON/);
    expect(rejection(() => decodeBody(Buffer.from([0x92, 0x01]), "msgpack"))).toMatch(/^body: malformed msgpack/);
    expect(rejection(() => decodePick(decodeBody(Buffer.from([0xc1]), "msgpack")))).toMatch(/^body: must be an object/);
    expect(rejection(() => decodePick(decodeBody(pack(new Date(0)), "msgpack")))).toMatch(/^body: must be an object/);
    expect(rejection(() => decodeBody(Buffer.alloc(500_000, 0x91), "msgpack"))).toMatch(/^body: malformed msgpack/);
  });
});

describe("pick bodies", () => {
  it("maps every field; a prompt estimates ISL as ceil(length / 4); null is absent", () => {
    const input = decodePick({
      requestId: "r1",
      model: "llama",
      prompt: "x".repeat(4001),
      maxTokens: 100,
      prefixHit: 0.5,
      sloTtftMs: 250,
      sloTpotMs: 20,
      sloLevel: "HIGH",
      priority: -1,
      seed: 7,
      explain: true,
    });
    expect(input).toEqual({
      requestId: "r1",
      sloLevel: "HIGH",
      inputTokens: 1001,
      outputTokens: 100,
      prefixHit: 0.5,
      sloTtftMs: 250,
      sloTpotMs: 20,
      priority: -1,
      seed: 7,
      explain: true,
    });
    expect(decodePick({ prompt: "abcd", inputTokens: 10, seed: null }).inputTokens).toBe(10);
    expect(decodePick({ seed: null }).seed).toBeUndefined();
    expect(decodePick(undefined)).toEqual(decodePick({}));
  });

  it("accepts slo_level and max_tokens as aliases, and refuses them when they disagree", () => {
    expect(decodePick({ slo_level: "low", max_tokens: 5 })).toMatchObject({ sloLevel: "low", outputTokens: 5 });
    expect(decodePick({ sloLevel: "Low", slo_level: "low" }).sloLevel).toBe("Low");
    expect(rejection(() => decodePick({ sloLevel: "high", slo_level: "low" }))).toMatch(/^sloLevel: disagrees with slo_level/);
  });

  it("SLO headers win over the body's fields, field by field", () => {
    const input = decodePick({ sloLevel: "low", sloTtftMs: 900, sloTpotMs: 90 }, { level: "high", ttftMs: "120.5", tpotMs: "" });
    expect(input).toMatchObject({ sloLevel: "high", sloTtftMs: 120.5, sloTpotMs: 90 });
  });

  it.each([
    [{ inputTokens: -1 }, /^inputTokens: must be an integer in \[0, 10000000\], got -1$/],
    [{ inputTokens: 1.5 }, /^inputTokens: must be an integer/],
    [{ inputTokens: "12" }, /^inputTokens: .*got "12"$/],
    [{ maxTokens: -3 }, /^maxTokens: /],
    [{ prefixHit: 1.01 }, /^prefixHit: must be a number in \[0, 1\]/],
    [{ prefixHit: -0.1 }, /^prefixHit: /],
    [{ sloTtftMs: 0 }, /^sloTtftMs: must be a number of milliseconds in \(0, /],
    [{ sloTpotMs: -5 }, /^sloTpotMs: /],
    [{ sloTtftMs: "fast" }, /^sloTtftMs: .*got "fast"$/],
    [{ seed: 1.5 }, /^seed: must be an integer in \[0, 4294967295\]/],
    [{ seed: 2 ** 32 }, /^seed: /],
    [{ priority: 0.5 }, /^priority: must be an integer/],
    [{ explain: "yes" }, /^explain: must be true or false/],
    [{ requestId: "" }, /^requestId: must be a string of 1 to 256 characters/],
    [{ requestId: 5 }, /^requestId: /],
    [{ sloLevel: 3 }, /^sloLevel: must be a non-empty string, got 3$/],
    [{ model: {} }, /^model: /],
    [{ prompt: ["a"] }, /^prompt: must be a string/],
    [[1, 2], /^body: must be an object/],
    ["text", /^body: must be an object/],
  ])("refuses %j naming the field", (body, message) => {
    expect(rejection(() => decodePick(body))).toMatch(message);
  });

  it("refuses a bad SLO header even when the body has a good value, and a bad body field under a good header", () => {
    expect(rejection(() => decodePick({ sloTtftMs: 100 }, { ...NO_SLO_HEADERS, ttftMs: "abc" }))).toMatch(/^header x-slo-ttft-ms: must be a decimal number, got "abc"$/);
    expect(rejection(() => decodePick({}, { ...NO_SLO_HEADERS, tpotMs: "-4" }))).toMatch(/^header x-slo-tpot-ms: /);
    expect(rejection(() => decodePick({}, { ...NO_SLO_HEADERS, ttftMs: "0" }))).toMatch(/^header x-slo-ttft-ms: must be a number of milliseconds/);
    expect(rejection(() => decodePick({ sloTtftMs: -1 }, { ...NO_SLO_HEADERS, ttftMs: "100" }))).toMatch(/^sloTtftMs: /);
  });

  it("shows a value that is not finite as itself, not as JSON's null (which would mean absent)", () => {
    expect(rejection(() => decodePick(decodeBody(Buffer.from('{"sloTtftMs":1e400}'), "json")))).toMatch(/^sloTtftMs: .*, got Infinity$/);
    expect(rejection(() => decodePick(unpack(pack({ inputTokens: NaN }))))).toMatch(/^inputTokens: .*, got NaN$/);
    expect(rejection(() => decodePick({ priority: -Infinity }))).toMatch(/^priority: .*, got -Infinity$/);
  });

  it("reads only the body's own fields: a decoded __proto__ supplies nothing", () => {
    expect(decodePick(JSON.parse('{"__proto__":{"sloLevel":"gold","seed":-1}}'))).toEqual(decodePick({}));
  });

  it("names stream items by position", () => {
    expect(rejection(() => decodePick({ seed: -1 }, NO_SLO_HEADERS, "items[3]."))).toMatch(/^items\[3\]\.seed: /);
    expect(rejection(() => decodePick(7, NO_SLO_HEADERS, "items[0]."))).toMatch(/^items\[0\]: must be an object/);
  });
});

describe("gateway headers", () => {
  it("reads the SLO, id, ISL and priority headers; x-prompt-tokens beats x-original-content-length", () => {
    expect(decodeGatewayPick(headers({ level: "high", ttftMs: "200", tpotMs: "25", requestId: "abc", originalContentLength: "4001", priority: "-2" }))).toEqual({
      requestId: "abc",
      sloLevel: "high",
      sloTtftMs: 200,
      sloTpotMs: 25,
      inputTokens: 1001,
      priority: -2,
    });
    expect(decodeGatewayPick(headers({ promptTokens: "300", originalContentLength: "4001" })).inputTokens).toBe(300);
    // nginx (deploy/) lets bodies of up to 64 MB through: past 10^7 tokens' worth the estimate stops.
    expect(decodeGatewayPick(headers({ originalContentLength: "40000004" })).inputTokens).toBe(10_000_000);
    expect(decodeGatewayPick(headers({ originalContentLength: String(64 * 2 ** 20) })).inputTokens).toBe(10_000_000);
    expect(decodeGatewayPick(headers({}))).toEqual({});
  });

  it.each([
    [{ ttftMs: "soon" }, /^header x-slo-ttft-ms: must be a decimal number/],
    [{ promptTokens: "1.5" }, /^header x-prompt-tokens: must be an integer/],
    [{ promptTokens: "-3" }, /^header x-prompt-tokens: must be a decimal number/],
    [{ originalContentLength: "lots" }, /^header x-original-content-length: /],
    [{ originalContentLength: "1e400" }, /^header x-original-content-length: /],
    [{ priority: "high" }, /^header x-headroom-priority: must be an integer/],
    [{ requestId: "x".repeat(257) }, /^header x-request-id: /],
  ])("refuses %j naming the header", (h, message) => {
    expect(rejection(() => decodeGatewayPick(headers(h)))).toMatch(message);
  });
});

describe("routes, reports, pods, addresses", () => {
  it("route: the header's level, else the body's", () => {
    expect(decodeRouteLevel({ sloLevel: "low" }, "")).toBe("low");
    expect(decodeRouteLevel({ slo_level: "low" }, "high")).toBe("high");
    expect(decodeRouteLevel(undefined, "")).toBeUndefined();
    expect(rejection(() => decodeRouteLevel([], ""))).toMatch(/^body: must be an object/);
  });

  it("reports: one or a list, clean copies, every item checked and named", () => {
    expect(decodeReports({ requestId: "a", ok: true, ttftMs: 12.5, extra: 1, decode: null })).toEqual([{ requestId: "a", ok: true, ttftMs: 12.5 }]);
    expect(decodeReports({ reports: [{ requestId: "a", ok: false }, { requestId: "b", ok: true, outputTokens: 3, decode: "h:1" }] })).toEqual([
      { requestId: "a", ok: false },
      { requestId: "b", ok: true, outputTokens: 3, decode: "h:1" },
    ]);
    expect(rejection(() => decodeReports({ reports: [{ requestId: "a", ok: true }, { requestId: "b", ok: true, tpotMs: -1 }] }))).toMatch(/^reports\[1\]\.tpotMs: must be a number of milliseconds in \[0, 1000000000\]/);
    // 1e13 ms passed, and made the planners' latency histogram throw from a timer: the process ended.
    expect(rejection(() => decodeReports({ requestId: "a", ok: true, ttftMs: 1e13 }))).toMatch(/^ttftMs: must be a number of milliseconds/);
    expect(decodeReports({ requestId: "a", ok: true, ttftMs: 1e9 })).toEqual([{ requestId: "a", ok: true, ttftMs: 1e9 }]);
    expect(rejection(() => decodeReports({ reports: {} }))).toMatch(/^reports: must be an array/);
    expect(rejection(() => decodeReports({ requestId: "a" }))).toMatch(/^ok: is required/);
    expect(rejection(() => decodeReports({ ok: true }))).toMatch(/^requestId: is required/);
    expect(rejection(() => decodeReports(undefined))).toMatch(/^body: must be a report object/);
  });

  it("pods: one or a list, pool and address required, nulls dropped", () => {
    expect(decodePods({ address: "h:1", pool: "high", role: "decode", rack: null })).toEqual([{ address: "h:1", pool: "high", role: "decode" }]);
    expect(decodePods({ pods: [{ address: "h:1", pool: "p", role: "both" }] })).toHaveLength(1);
    expect(rejection(() => decodePods({ pods: [{ address: "h:1", role: "both" }] }))).toMatch(/^pods\[0\]\.pool: must be a pool name/);
    expect(rejection(() => decodePods({ pool: "p" }))).toMatch(/^pods\[0\]\.address: /);
    expect(rejection(() => decodePods({ pods: "all" }))).toMatch(/^pods: must be an array/);
  });

  it("pods: a decoded __proto__ key stays an own field and never sets the pod's prototype (found by fuzzing)", () => {
    const [pod] = decodePods(JSON.parse('{"address":"h:1","pool":"high","__proto__":{"role":"decode"}}'));
    expect(Object.getPrototypeOf(pod)).toBe(Object.prototype);
    expect((pod as { role?: string }).role).toBeUndefined();
    expect(Object.hasOwn(pod, "__proto__")).toBe(true);
  });

  it("addresses in paths are percent-decoded", () => {
    expect(decodeAddressParam("10.0.0.1%3A8000")).toBe("10.0.0.1:8000");
    expect(decodeAddressParam("%5B%3A%3A1%5D:8000")).toBe("[::1]:8000");
    expect(rejection(() => decodeAddressParam("%E0%A4%A"))).toMatch(/^path address: /);
  });
});

describe("stream frames", () => {
  it("decodes {t, items}; anything else is a RequestError naming what is wrong", () => {
    expect(decodeFrame(pack({ t: "pick", items: [{ sloLevel: "high" }] }))).toEqual({ t: "pick", items: [{ sloLevel: "high" }] });
    expect(rejection(() => decodeFrame(Buffer.from([0xc1, 0x00])))).toMatch(/^frame: malformed msgpack/);
    expect(rejection(() => decodeFrame(pack([1, 2])))).toMatch(/^frame: must be a map/);
    expect(rejection(() => decodeFrame(pack({ t: "picks", items: [] })))).toMatch(/^frame\.t: must be "pick" or "report", got "picks"/);
    expect(rejection(() => decodeFrame(pack({ t: "pick", items: 3 })))).toMatch(/^frame\.items: must be an array/);
  });
});

describe("pick answers", () => {
  // Built field by field in the engine's order (src/engine/engine.ts, answer()), as JSON.stringify sees it.
  const text = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("10.0.0.1:8000", 'a"b\\c', "\u2028", "\ud800"));
  const num = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e21, 5e-324));
  const answer = fc
    .record({
      requestId: text,
      pool: text,
      outcome: fc.constantFrom("positive_headroom", "negative_headroom", "no_slo"),
      decodeOnly: fc.boolean(),
      prefill: fc.option(text, { nil: undefined }),
      decode: text,
      fallbacks: fc.array(text, { maxLength: 3 }),
      predicted: fc.record({ prefillTtftMs: num, decodeTtftMs: num, transferMs: num, ttftMs: num, tpotMs: num }),
      headroom: fc.record({ ttftMs: num, tpotMs: num, blended: num }, { requiredKeys: [] }),
      headers: fc.dictionary(text, text, { maxKeys: 3 }),
      pairs: num,
      positivePairs: num,
    })
    .map((a) => a as unknown as PickAnswer);

  /** The answer with its times rounded to the microsecond, built in the same order. */
  const roundMs = (x: number) => Math.round(x * 1000) / 1000;
  const roundedTimes = (a: PickAnswer): PickAnswer => ({
    ...a,
    predicted: Object.fromEntries(Object.entries(a.predicted).map(([k, v]) => [k, roundMs(v)])) as PickAnswer["predicted"],
    headroom: Object.fromEntries(Object.entries(a.headroom).map(([k, v]) => [k, v === undefined ? v : roundMs(v)])),
  });

  it("JSON is what JSON.stringify writes for the answer with its times rounded to the microsecond, for any strings and numbers", () => {
    fc.assert(
      fc.property(answer, (a) => {
        expect(encodePickAnswer(a, "json")).toBe(JSON.stringify(roundedTimes(a)));
      }),
      { numRuns: 2000 },
    );
  });

  it("times of every size and sign are written as V8 writes them once rounded", () => {
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.double({ min: -1e6, max: 1e6 }), fc.integer().map((i) => i / 1000 + 0.0005), fc.constantFrom(-0.0004, -0.0005, 0.0005, 999.9995, 1e12 - 0.0005, 1e15)), (t) => {
        const a = { requestId: "r", pool: "p", outcome: "positive_headroom", decodeOnly: false, decode: "d", fallbacks: [], predicted: { prefillTtftMs: t, decodeTtftMs: t, transferMs: t, ttftMs: t, tpotMs: t }, headroom: { ttftMs: t }, headers: {}, pairs: 1, positivePairs: 1 } as unknown as PickAnswer;
        expect(encodePickAnswer(a, "json")).toBe(JSON.stringify(roundedTimes(a)));
      }),
      { numRuns: 5000 },
    );
  });

  it("an answer with explain, and msgpack, take the general encoders", () => {
    fc.assert(
      fc.property(answer, (a) => {
        const explained = { ...a, explain: [{ decode: a.decode, link: "node", ttftMs: 1, tpotMs: 2, positive: true }] } as PickAnswer;
        expect(encodePickAnswer(explained, "json")).toBe(JSON.stringify(explained));
        expect(unpack(encodePickAnswer(a, "msgpack") as Uint8Array)).toEqual(unpack(pack(a)));
      }),
      { numRuns: 200 },
    );
  });
});
