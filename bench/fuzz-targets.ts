// The fuzzing targets of `npm run fuzz` (bench/fuzz.ts, 100,000 inputs each by default) and of
// test/fuzz.test.ts (a few hundred each, in every CI run): every decoder that takes bytes or text from
// outside the process, fed fast-check inputs that range from random bytes to mutations of valid input.
// A target answers "ok" or the error code it rejected the input with; any other outcome (an exception
// that is not a HeadroomError, a code the target does not document, a result that breaks the decoder's
// own promise) is a crash.

import { readFileSync } from "node:fs";
import fc from "fast-check";
import { pack } from "msgpackr";
import { parseConfig } from "../src/config/load.js";
import { HeadroomError } from "../src/errors.js";
import { shippedFile } from "../src/paths.js";
import { isIP } from "node:net";
import { podSpecOf, ROLE_LABEL, ZONE_LABEL } from "../src/pods/kubernetes.js";
import { parseVllmMetrics, VLLM_PARSE_CAUSES } from "../src/pods/vllm-metrics.js";
import { parsePredictions } from "../src/predictors/remote.js";
import { decodeBody, decodeFrame, decodeGatewayPick, decodePick, decodePods, decodeReportItems, decodeReports } from "../src/server/codec.js";

export interface FuzzTarget<T = unknown> {
  name: string;
  /** The rejection codes this entry point documents (README, Errors). */
  codes: readonly string[];
  input: fc.Arbitrary<T>;
  /** "ok", or the code of a documented rejection; throws for anything else. */
  run(input: T): string;
}

/** Thrown for an outcome that is neither "ok" nor a documented rejection. */
export class FuzzCrash extends Error {}

function rejection(err: unknown, codes: readonly string[]): string {
  if (err instanceof HeadroomError && codes.includes(err.code)) return err.code;
  throw new FuzzCrash(`undocumented failure: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
}

/** Runs a decoder: "ok", or the documented code it rejected the input with. */
function decoded(codes: readonly string[], decode: () => unknown): string {
  try {
    decode();
    return "ok";
  } catch (err) {
    return rejection(err, codes);
  }
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Values a client could send, near and far from what a field wants. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, "", "high", "medium", "low", 0, -1, 1.5, 1e308, -1e308, Number.NaN, Infinity, 2 ** 53, "1e3", "NaN", [], {}),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.array(fc.integer(), { maxLength: 3 }),
);

const PICK_FIELDS = ["requestId", "sloLevel", "slo_level", "inputTokens", "maxTokens", "outputTokens", "prefixHit", "sloTtftMs", "sloTpotMs", "priority", "seed", "explain", "prompt", "messages"];

/** Pick bodies: field names a pick knows (and a few it does not) with hostile values. */
const pickLike: fc.Arbitrary<unknown> = fc.oneof(
  fc.dictionary(fc.constantFrom(...PICK_FIELDS, "__proto__", "constructor", "x"), hostileValue, { maxKeys: 6 }),
  fc.jsonValue(),
);

const SLO_HEADER_VALUES = fc.oneof(fc.constant(""), fc.string({ maxLength: 12 }), fc.constantFrom("high", "LOW", "0", "-5", "1e9", "300", " 30 ", "NaN", "0x10", "∞"));

const exampleConfig = readFileSync(shippedFile("deploy", "config", "headroom.yaml"), "utf8");
const exampleMetrics = readFileSync(shippedFile("test", "fixtures", "vllm-metrics.txt"), "utf8");

/** Text mutated line by line: lines dropped, duplicated, truncated, or replaced by random text. */
function mutatedLines(text: string): fc.Arbitrary<string> {
  const lines = text.split("\n");
  const edit = fc.record({
    at: fc.nat({ max: lines.length - 1 }),
    kind: fc.constantFrom("drop", "dup", "cut", "replace", "insert"),
    cut: fc.nat({ max: 80 }),
    text: fc.string({ maxLength: 40 }),
  });
  return fc.array(edit, { minLength: 1, maxLength: 6 }).map((edits) => {
    const out = [...lines];
    for (const e of edits) {
      const at = Math.min(e.at, out.length - 1);
      if (at < 0) break;
      if (e.kind === "drop") out.splice(at, 1);
      else if (e.kind === "dup") out.splice(at, 0, out[at]);
      else if (e.kind === "cut") out[at] = out[at].slice(0, e.cut);
      else if (e.kind === "replace") out[at] = e.text;
      else out.splice(at, 0, e.text);
    }
    return out.join("\n");
  });
}

const PICK_CODES = ["REQUEST_INVALID"];

export const FUZZ_TARGETS: readonly FuzzTarget<any>[] = [
  {
    name: "json-pick-body",
    codes: PICK_CODES,
    input: fc.oneof(fc.uint8Array({ maxLength: 64 }), pickLike.map((v) => utf8(JSON.stringify(v) ?? "")), fc.string().map(utf8)),
    run(bytes: Uint8Array) {
      return decoded(PICK_CODES, () => decodePick(decodeBody(bytes, "json")));
    },
  },
  {
    name: "msgpack-pick-body",
    codes: PICK_CODES,
    input: fc.oneof(fc.uint8Array({ maxLength: 64 }), pickLike.map((v) => pack(v) as Uint8Array)),
    run(bytes: Uint8Array) {
      return decoded(PICK_CODES, () => decodePick(decodeBody(bytes, "msgpack")));
    },
  },
  {
    name: "gateway-headers",
    codes: PICK_CODES,
    input: fc.record({
      level: SLO_HEADER_VALUES,
      ttftMs: SLO_HEADER_VALUES,
      tpotMs: SLO_HEADER_VALUES,
      requestId: fc.oneof(fc.constant(""), fc.string({ maxLength: 300 })),
      promptTokens: SLO_HEADER_VALUES,
      originalContentLength: SLO_HEADER_VALUES,
      priority: SLO_HEADER_VALUES,
    }),
    run(headers) {
      return decoded(PICK_CODES, () => decodeGatewayPick(headers));
    },
  },
  {
    name: "report-batch",
    codes: PICK_CODES,
    input: fc.oneof(
      fc.jsonValue(),
      fc.record({ reports: fc.array(fc.dictionary(fc.constantFrom("requestId", "ok", "ttftMs", "tpotMs", "inputTokens", "outputTokens", "decode"), hostileValue), { maxLength: 4 }) }),
    ),
    run(body) {
      return decoded(PICK_CODES, () => decodeReports(body));
    },
  },
  {
    name: "websocket-frame",
    codes: PICK_CODES,
    input: fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.record({ t: fc.constantFrom("pick", "report", "other", 1), items: fc.oneof(fc.array(pickLike, { maxLength: 4 }), hostileValue) }).map((f) => pack(f) as Uint8Array),
    ),
    run(bytes: Uint8Array) {
      try {
        const frame = decodeFrame(bytes);
        // Items are decoded one by one; a bad item is answered alone, the others still count.
        let firstRejection: string | undefined;
        for (const item of frame.items) {
          try {
            if (frame.t === "pick") decodePick(item);
            else decodeReportItems([item]);
          } catch (err) {
            firstRejection ??= rejection(err, PICK_CODES);
          }
        }
        return firstRejection ?? "ok";
      } catch (err) {
        return rejection(err, PICK_CODES);
      }
    },
  },
  {
    name: "pod-push",
    codes: PICK_CODES,
    input: fc.oneof(
      fc.jsonValue(),
      fc.record({ pods: fc.array(fc.dictionary(fc.constantFrom("address", "pool", "role", "node", "rack", "tp", "metricsUrl", "draining", "__proto__"), hostileValue), { maxLength: 3 }) }),
    ),
    run(body) {
      try {
        for (const pod of decodePods(body)) if (Object.getPrototypeOf(pod) !== Object.prototype) throw new FuzzCrash("a decoded pod is not a plain object");
        return "ok";
      } catch (err) {
        if (err instanceof FuzzCrash) throw err;
        return rejection(err, PICK_CODES);
      }
    },
  },
  {
    name: "config-yaml",
    codes: ["CONFIG_INVALID"],
    input: fc.oneof(mutatedLines(exampleConfig), fc.string({ maxLength: 200 })),
    run(text: string) {
      return decoded(["CONFIG_INVALID"], () => parseConfig(text, "fuzz.yaml"));
    },
  },
  {
    name: "prometheus-text",
    codes: [...VLLM_PARSE_CAUSES],
    input: fc.oneof(mutatedLines(exampleMetrics), fc.string({ maxLength: 200 })),
    run(text: string) {
      const result = parseVllmMetrics(text, 0);
      if (result.ok) {
        const m = result.metrics;
        const finite = [m.waiting, m.running, m.kvUsage].every((v) => Number.isFinite(v) && v >= 0);
        if (!finite || m.kvUsage > 1) throw new FuzzCrash(`accepted metrics out of range: ${JSON.stringify(m)}`);
        return "ok";
      }
      if (!VLLM_PARSE_CAUSES.includes(result.cause)) throw new FuzzCrash(`unknown cause ${result.cause}`);
      return result.cause;
    },
  },
  {
    name: "kubernetes-pod",
    codes: ["not_ready", "bad_role", "bad_ip"],
    input: fc.record({
      metadata: fc.record(
        {
          name: fc.string({ maxLength: 20 }),
          namespace: fc.string({ maxLength: 10 }),
          uid: fc.string({ maxLength: 10 }),
          deletionTimestamp: fc.constantFrom(undefined, new Date(0)),
          labels: fc.dictionary(fc.oneof(fc.constantFrom(ROLE_LABEL, ZONE_LABEL, "app"), fc.string({ maxLength: 8 })), fc.oneof(fc.constantFrom("prefill", "decode", "both", "prefill-decode", "Decode", ""), fc.string({ maxLength: 12 })), { maxKeys: 4 }),
        },
        { requiredKeys: [] },
      ),
      status: fc.record(
        {
          podIP: fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 20 }), fc.constantFrom("", "10.0.0.1\n", "[::1]", "10.0.0.1:80")),
          conditions: fc.array(fc.record({ type: fc.constantFrom("Ready", "PodScheduled", ""), status: fc.constantFrom("True", "False", "Unknown") }), { maxLength: 3 }),
        },
        { requiredKeys: [] },
      ),
      spec: fc.record({ nodeName: fc.string({ maxLength: 12 }) }, { requiredKeys: [] }),
    }),
    run(pod) {
      const spec = podSpecOf(pod as never, "high", 8000, "/metrics");
      if (spec === null) return "not_ready";
      if (typeof spec === "string") return spec;
      const at = spec.address.lastIndexOf(":");
      const host = spec.address.slice(0, at).replace(/^\[(.*)\]$/, "$1");
      if (isIP(host) === 0 || spec.address.slice(at + 1) !== "8000") throw new FuzzCrash(`accepted address ${JSON.stringify(spec.address)}`);
      if (!["prefill", "decode", "both"].includes(spec.role)) throw new FuzzCrash(`accepted role ${spec.role}`);
      if (new URL(spec.metricsUrl!).port !== "8000") throw new FuzzCrash(`metrics URL ${spec.metricsUrl}`);
      return "ok";
    },
  },
  {
    name: "predictor-response",
    codes: ["rejected"],
    input: fc.record({
      expected: fc.integer({ min: 0, max: 4 }),
      text: fc.oneof(
        fc.string({ maxLength: 60 }),
        fc.array(fc.dictionary(fc.constantFrom("ttft_ms", "tpot_ms", "x"), hostileValue), { maxLength: 5 }).map((p) => JSON.stringify({ predictions: p }) ?? ""),
        fc.jsonValue().map((v) => JSON.stringify(v) ?? ""),
      ),
    }),
    run({ expected, text }: { expected: number; text: string }) {
      const MAX_MS = 600_000;
      const result = parsePredictions(text, expected, "ttft_ms", MAX_MS);
      if (typeof result === "string") return "rejected";
      if (result.length !== expected || !result.every((v) => Number.isFinite(v) && v >= 0 && v <= MAX_MS)) {
        throw new FuzzCrash(`accepted predictions out of range: ${[...result].join(",")}`);
      }
      return "ok";
    },
  },
];

export interface FuzzReport {
  target: string;
  inputs: number;
  accepted: number;
  rejected: Record<string, number>;
  crashes: number;
  counterexample?: string;
  durationMs: number;
}

/** Runs one target over `runs` inputs from `seed`; the first crash ends the run and is reported. */
export function fuzz(target: FuzzTarget, runs: number, seed: number): FuzzReport {
  const rejected: Record<string, number> = {};
  let accepted = 0;
  let inputs = 0;
  const started = performance.now();
  const result = fc.check(
    fc.property(target.input, (input) => {
      inputs++;
      const outcome = target.run(input);
      if (outcome === "ok") accepted++;
      else rejected[outcome] = (rejected[outcome] ?? 0) + 1;
    }),
    { numRuns: runs, seed, endOnFailure: true },
  );
  return {
    target: target.name,
    inputs,
    accepted,
    rejected,
    crashes: result.failed ? 1 : 0,
    counterexample: result.failed ? `${String(result.errorInstance)} for ${fc.stringify(result.counterexample)}` : undefined,
    durationMs: Math.round(performance.now() - started),
  };
}
