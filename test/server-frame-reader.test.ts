// The stream's fast frame reader (src/server/frame-reader.ts) against msgpackr, which reads whatever it
// leaves: on any frame the server's decoding gives what msgpackr's alone gives, the reader takes the
// common frames (so the comparison is not vacuous), and no bytes make it throw or read what msgpackr
// would not. Frames are written here header by header in every width msgpack allows (msgpackr's own
// writer uses one form per type), with duplicate, unknown and hostile keys and values.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFrame, decodeFrameWithMsgpackr, decodePick, decodeReportItems, type StreamFrame } from "../src/server/codec.js";
import { readFrame } from "../src/server/frame-reader.js";

/** A msgpack value to write: maps as key-value pairs in order, so that a key may repeat. */
type Value = null | boolean | number | bigint | string | Uint8Array | { list: Value[] } | { pairs: [Value, Value][] } | { float32: number };

/** Writes msgpack, each header in a width drawn from `widths` where more than one fits. */
function write(value: Value, widths: () => number): Uint8Array {
  const out: number[] = [];
  const bytes = (n: number, size: number) => {
    for (let s = size - 1; s >= 0; s--) out.push(Number((BigInt(n) >> BigInt(8 * s)) & 0xffn));
  };
  const header = (n: number, fix: number | null, fixMax: number, codes: [number, number, number] | [null, number, number]) => {
    const forms = [fix !== null && n <= fixMax ? "fix" : null, codes[0] !== null && n <= 0xff ? 8 : null, n <= 0xffff ? 16 : null, 32].filter((f) => f !== null);
    const form = forms[widths() % forms.length];
    if (form === "fix") out.push(fix! | n);
    else if (form === 8) out.push(codes[0]!, n);
    else if (form === 16) (out.push(codes[1]), bytes(n, 2));
    else (out.push(codes[2]), bytes(n, 4));
  };
  const put = (v: Value): void => {
    if (v === null) out.push(0xc0);
    else if (typeof v === "boolean") out.push(v ? 0xc3 : 0xc2);
    // int64 for negatives and, at times, for others too (as Go's encoder writes every int); else uint64.
    else if (typeof v === "bigint") {
      out.push(v < 0n || (v < 2n ** 63n && widths() % 2 === 0) ? 0xd3 : 0xcf);
      bytes(Number(BigInt.asUintN(64, v) >> 32n), 4);
      bytes(Number(BigInt.asUintN(32, v)), 4);
    }
    else if (typeof v === "number") {
      const forms: (() => void)[] = [() => (out.push(0xcb), out.push(...new Uint8Array(new Float64Array([v]).buffer).reverse()))];
      if (Number.isInteger(v) && v >= 0 && v < 0x80) forms.push(() => out.push(v));
      if (Number.isInteger(v) && v >= -32 && v < 0) forms.push(() => out.push(0x100 + v));
      if (Number.isInteger(v) && v >= 0 && v <= 0xff) forms.push(() => out.push(0xcc, v));
      if (Number.isInteger(v) && v >= 0 && v <= 0xffff) forms.push(() => (out.push(0xcd), bytes(v, 2)));
      if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) forms.push(() => (out.push(0xce), bytes(v, 4)));
      if (Number.isInteger(v) && v >= -0x80 && v < 0x80) forms.push(() => out.push(0xd0, v & 0xff));
      if (Number.isInteger(v) && v >= -0x8000 && v < 0x8000) forms.push(() => (out.push(0xd1), bytes(v & 0xffff, 2)));
      if (Number.isInteger(v) && v >= -0x80000000 && v < 0x80000000) forms.push(() => (out.push(0xd2), bytes(v >>> 0, 4)));
      forms[widths() % forms.length]();
    } else if (typeof v === "string") {
      const utf8 = new TextEncoder().encode(v);
      header(utf8.length, 0xa0, 31, [0xd9, 0xda, 0xdb]);
      out.push(...utf8);
    } else if (v instanceof Uint8Array) {
      header(v.length, null, -1, [0xc4, 0xc5, 0xc6]);
      out.push(...v);
    } else if ("float32" in v) (out.push(0xca), out.push(...new Uint8Array(new Float32Array([v.float32]).buffer).reverse()));
    else if ("list" in v) {
      header(v.list.length, 0x90, 15, [null, 0xdc, 0xdd]);
      v.list.forEach(put);
    } else {
      header(v.pairs.length, 0x80, 15, [null, 0xde, 0xdf]);
      for (const [k, x] of v.pairs) (put(k), put(x));
    }
  };
  put(value);
  return Uint8Array.from(out);
}

const KNOWN = ["model", "prompt", "inputTokens", "sloLevel", "slo_level", "sloTtftMs", "sloTpotMs", "requestId", "maxTokens", "max_tokens", "prefixHit", "priority", "seed", "explain", "ok", "ttftMs", "tpotMs", "outputTokens", "decode"];

/** What the reader takes: nil, booleans, numbers (64-bit integers and float32 too), ASCII strings. */
const scalar: fc.Arbitrary<Value> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -0x80000000, max: 0xffffffff }),
  fc.double(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.float().map((float32) => ({ float32 })),
  fc.constantFrom(0, 1500, 0.1, 1e7, 10_000_001, -1, 2 ** 32 - 1),
  fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, "a")),
  fc.constantFrom("high", "medium", "low", "gold", ""),
);

/** What it leaves to msgpackr. */
const other: fc.Arbitrary<Value> = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.uint8Array({ maxLength: 4 }),
  fc.array(fc.integer(), { maxLength: 3 }).map((list) => ({ list })),
  fc.constant({ pairs: [["a", 1]] as [Value, Value][] }),
);

const commonItem = fc.array(fc.tuple(fc.constantFrom(...KNOWN), scalar), { maxLength: 6 }).map((pairs) => ({ pairs }) as Value);
const anyItem: fc.Arbitrary<Value> = fc.oneof(
  { weight: 4, arbitrary: commonItem },
  fc.array(fc.tuple(fc.oneof(fc.constantFrom(...KNOWN), fc.constantFrom("__proto__", "t", "constructor", "Seed", "seed "), fc.integer()), fc.oneof(scalar, other)), { maxLength: 6 }).map((pairs) => ({ pairs }) as Value),
  scalar,
  other,
);

const tValue = fc.constantFrom<Value>("pick", "report");
const commonFrame = fc
  .tuple(tValue, fc.array(commonItem, { maxLength: 20 }), fc.boolean())
  .map(([t, items, itemsFirst]) => ({ pairs: (itemsFirst ? [["items", { list: items }], ["t", t]] : [["t", t], ["items", { list: items }]]) as [Value, Value][] }) as Value);
const anyFrame: fc.Arbitrary<Value> = fc.oneof(
  commonFrame,
  fc
    .array(
      fc.oneof(
        fc.tuple(fc.constant<Value>("t"), fc.oneof(tValue, fc.constantFrom<Value>("picks", 1, null))),
        fc.tuple(fc.constant<Value>("items"), fc.oneof(fc.array(anyItem, { maxLength: 8 }).map((list) => ({ list }) as Value), scalar)),
        fc.tuple(fc.constantFrom<Value>("x", "__proto__", 7), scalar),
      ),
      { maxLength: 4 },
    )
    .map((pairs) => ({ pairs }) as Value),
  anyItem,
);

/** What the server makes of a frame, item by item: decoded picks or reports, or each one's error. */
function outcome(decode: (bytes: Uint8Array) => StreamFrame, bytes: Uint8Array): unknown {
  let frame: StreamFrame;
  try {
    frame = decode(bytes);
  } catch (err) {
    return { frameError: (err as Error).message };
  }
  return {
    t: frame.t,
    items: frame.items.map((item, i) => {
      try {
        return frame.t === "pick" ? decodePick(item, undefined, `items[${i}].`) : decodeReportItems([item]);
      } catch (err) {
        return { itemError: (err as Error).message };
      }
    }),
  };
}

/** Draws header widths from a seed (a small linear congruential generator). */
function widthsFrom(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) >>> 16;
}

describe("the stream's frame reader", () => {
  it("decodes every frame as msgpackr alone does, whatever its keys, values and header widths", () => {
    fc.assert(
      fc.property(anyFrame, fc.nat(), (frame, seed) => {
        const bytes = write(frame, widthsFrom(seed));
        expect(outcome(decodeFrame, bytes)).toEqual(outcome(decodeFrameWithMsgpackr, bytes));
      }),
      { numRuns: 1500 },
    );
  });

  it("reads the common frames itself, into the objects msgpackr makes", () => {
    fc.assert(
      fc.property(commonFrame, fc.nat(), (frame, seed) => {
        const bytes = write(frame, widthsFrom(seed));
        const read = readFrame(bytes);
        expect(read).toBeDefined();
        expect(read).toEqual(decodeFrameWithMsgpackr(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on hostile bytes, and reads nothing msgpackr would not read the same", () => {
    const mutated = fc
      .tuple(commonFrame, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat(), fc.uint8Array({ maxLength: 3 }))
      .map(([frame, seed, flips, cut, tail]) => {
        const bytes = write(frame, widthsFrom(seed));
        for (const [at, byte] of flips) if (bytes.length > 0) bytes[at % bytes.length] = byte;
        // Cut short, or followed by bytes after the frame.
        return cut % 2 === 0 ? bytes.subarray(0, bytes.length - (cut % 3)) : Uint8Array.from([...bytes, ...tail]);
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated), (bytes) => {
        const read = readFrame(bytes);
        if (read !== undefined) expect(read).toEqual(decodeFrameWithMsgpackr(bytes));
      }),
      { numRuns: 2000 },
    );
  });
});
