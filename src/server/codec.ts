// Wire formats in and out: JSON and msgpack bodies, SLO and gateway headers, and stream frames, decoded
// and validated into the engine's shapes (src/engine/types.ts). Every rejection is a RequestError whose
// message starts with the field or header at fault; nothing here touches engine state.

import { Packr, Unpackr, type Options } from "msgpackr";
import { MAX_ADDRESS_CHARS } from "../config/schema.js";
import type { CompletionReport, PickAnswer, PickInput, PodPush } from "../engine/types.js";
import { HeadroomError, messageOf, RequestError, shortened } from "../errors.js";
import { MAX_SLO_MS, MAX_TOKENS } from "../kernel/validate.js";
import { readFrame } from "./frame-reader.js";

export type BodyFormat = "json" | "msgpack";

/** Request ids are keys of the in-flight table; a bound keeps one request from holding a large key. */
export const MAX_REQUEST_ID_CHARS = 256;
/** SPEC.md §7: a prompt's ISL is estimated as one token per four characters. */
export const CHARS_PER_TOKEN = 4;
const MAX_SEED = 0xffffffff;

const MSGPACK_TYPES = new Set(["application/msgpack", "application/x-msgpack", "application/vnd.msgpack"]);

/**
 * JSON unless the content-type names msgpack: curl's and fetch's defaults for a text body
 * (form-urlencoded, text/plain) then work, and a body that is not JSON still gets a 400 saying so.
 */
export function bodyFormat(contentType: string): BodyFormat {
  return MSGPACK_TYPES.has(contentType.split(";", 1)[0].trim().toLowerCase()) ? "msgpack" : "json";
}

export const CONTENT_TYPE: Readonly<Record<BodyFormat, string>> = {
  json: "application/json",
  msgpack: "application/msgpack",
};

// No records: a record definition is a msgpackr extension other decoders lack, and maps must arrive as
// plain objects. copyBuffers: binary values must not alias a uWebSockets.js buffer that is neutered later.
// int64AsType: Go's common msgpack encoder writes every int as 64 bits, which msgpackr would otherwise
// decode as a BigInt (100n), failing every number check; past 2^53 a value is out of every range anyway.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true, int64AsType: "number" });
// Absent optional fields are left out, as JSON.stringify does (msgpackr 2 has skipValues; its typings lack it).
const packr = new Packr({ useRecords: false, skipValues: [undefined] } as Options);

/** The decoded body; an empty body is `undefined`. Throws RequestError for bytes that do not parse. */
export function decodeBody(bytes: Uint8Array, format: BodyFormat): unknown {
  if (bytes.byteLength === 0) return undefined;
  if (format === "msgpack") return decodeMsgpack(bytes, "body");
  try {
    // A Buffer (what the server reads) decodes itself; a view on it would be one more object per body.
    const text = Buffer.isBuffer(bytes) ? bytes.toString("utf8") : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
    return JSON.parse(text);
  } catch (err) {
    throw new RequestError(`body: malformed JSON (${reason(err)})`);
  }
}

export function encodeBody(value: unknown, format: BodyFormat): string | Uint8Array {
  return format === "msgpack" ? packr.pack(value) : JSON.stringify(value);
}

/**
 * A pick's answer in its format. JSON is written field by field, the text JSON.stringify gives for the
 * answer with its times rounded to the microsecond, which are written from an integer: most of what
 * JSON.stringify spends on this object is writing full-precision doubles (`encode-json` in
 * `bench:pick-path`). msgpack carries the exact doubles, at no such cost. An answer with `explain`
 * takes the general path, times exact.
 */
export function encodePickAnswer(answer: PickAnswer, format: BodyFormat): string | Uint8Array {
  if (format === "msgpack" || answer.explain !== undefined) return encodeBody(answer, format);
  const p = answer.predicted;
  const h = answer.headroom;
  let json = `{"requestId":${quoted(answer.requestId)},"pool":${quotedKnown(answer.pool)},"outcome":${quotedKnown(answer.outcome)},"decodeOnly":${answer.decodeOnly}`;
  if (answer.prefill !== undefined) json += `,"prefill":${quotedKnown(answer.prefill)}`;
  json += `,"decode":${quotedKnown(answer.decode)},"fallbacks":[`;
  for (let i = 0; i < answer.fallbacks.length; i++) json += (i === 0 ? "" : ",") + quotedKnown(answer.fallbacks[i]);
  json += `],"predicted":{"prefillTtftMs":${ms(p.prefillTtftMs)},"decodeTtftMs":${ms(p.decodeTtftMs)},"transferMs":${ms(p.transferMs)},"ttftMs":${ms(p.ttftMs)},"tpotMs":${ms(p.tpotMs)}},"headroom":{`;
  let separator = "";
  for (const key of HEADROOM_KEYS) {
    const v = h[key];
    if (v === undefined) continue;
    json += `${separator}"${key}":${ms(v)}`;
    separator = ",";
  }
  json += `},"headers":{`;
  separator = "";
  for (const name in answer.headers) {
    json += `${separator}${quotedKnown(name)}:${quotedKnown(answer.headers[name])}`;
    separator = ",";
  }
  return `${json}},"pairs":${number(answer.pairs)},"positivePairs":${number(answer.positivePairs)}}`;
}

const HEADROOM_KEYS = ["ttftMs", "tpotMs", "blended"] as const;

/** Printable ASCII but `"` and `\`: such a string is its own JSON text between quotes. */
const PLAIN_STRING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function quoted(s: string): string {
  return PLAIN_STRING.test(s) ? `"${s}"` : JSON.stringify(s);
}

/**
 * quoted() of the strings every answer repeats (pools, outcomes, pod addresses, header names), kept:
 * a lookup costs less than the test. Bounded, since pods come and go: full, it starts again.
 */
const knownQuoted = new Map<string, string>();
const KNOWN_QUOTED_MAX = 4096;

function quotedKnown(s: string): string {
  let q = knownQuoted.get(s);
  if (q !== undefined) return q;
  if (knownQuoted.size >= KNOWN_QUOTED_MAX) knownQuoted.clear();
  knownQuoted.set(s, (q = quoted(s)));
  return q;
}

/** As JSON.stringify writes a number: NaN and the infinities are null. */
function number(x: number): string {
  if (Number.isInteger(x) && x >= 0 && x < 1e15) return digits(x);
  return Number.isFinite(x) ? String(x) : "null";
}

/** "0" to "999", and the same padded with zeros to three digits. */
const UP_TO_999 = Array.from({ length: 1000 }, (_, i) => String(i));
const THREE_DIGITS = UP_TO_999.map((s) => s.padStart(3, "0"));

/**
 * An integer from 0 to 10^15 in decimal, three digits at a time from the tables above. String(n) gives
 * the same text, but V8 enters every number it converts in its number-to-string cache, a table in the
 * old generation: each string for a number not seen before is then referenced from there and survives
 * the young generation's collections, which copy it. Under bench:rpc's HTTP load, which only grows,
 * the times in answers were new numbers all the time, and those strings were most of what each
 * scavenge copied: `path-http` in bench:pick-path, scavenge median 2.7-3.2 ms before, 0.8-1.4 since.
 */
function digits(n: number): string {
  let text = "";
  while (n >= 1000) {
    const high = Math.floor(n / 1000);
    text = THREE_DIGITS[n - high * 1000] + text;
    n = high;
  }
  return UP_TO_999[n] + text;
}

/** ".001" to ".999" without trailing zeros, and "" for none: the decimals of a rounded time. */
const DECIMALS = THREE_DIGITS.map((s, i) => (i === 0 ? "" : `.${s.replace(/0+$/, "")}`));

/**
 * Milliseconds rounded to the microsecond as JSON.stringify writes them, from the integer count of
 * microseconds. Below 10^15 µs a three-decimal number is its own shortest round-trip form, which is
 * what V8 writes; beyond, V8 writes it.
 */
function ms(x: number): string {
  const us = Math.round(x * 1000);
  if (!(Math.abs(us) < 1e15)) return number(us / 1000);
  const abs = Math.abs(us);
  const whole = Math.floor(abs / 1000);
  // -0.0004 rounds to -0, which JSON writes as 0.
  return (us < 0 ? "-" : "") + digits(whole) + DECIMALS[abs - whole * 1000];
}

export function encodeMsgpack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Throws RequestError, naming `what`, when the bytes are not msgpack. */
function decodeMsgpack(bytes: Uint8Array, what: string): unknown {
  try {
    return unpackr.unpack(bytes);
  } catch (err) {
    throw new RequestError(`${what}: malformed msgpack (${reason(err)})`);
  }
}

/** A decoder's complaint, short. A stack overflow on deep nesting lands here too, as a RangeError. */
function reason(err: unknown): string {
  return messageOf(err).slice(0, 120);
}

// ---- field checks: own properties only (a decoded `__proto__` must not supply fields); null is absent ----

type Obj = Record<string, unknown>;

/** A plain object: not an array, nor a decoded Date, binary value, Map or msgpackr's marker for byte 0xc1. */
export function isObject(v: unknown): v is Obj {
  if (v === null || typeof v !== "object") return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function field(obj: Obj, key: string): unknown {
  const v = Object.hasOwn(obj, key) ? obj[key] : undefined;
  return v === null ? undefined : v;
}

/** A value for a message: short, and safe for any decoded type. */
function shown(v: unknown): string {
  if (typeof v === "bigint") return bigintShown(v);
  // JSON writes these as null, which reads as "absent" (and null is accepted): 1e400 in JSON, NaN in msgpack.
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  if (ArrayBuffer.isView(v)) return `<${v.byteLength} bytes>`;
  let text: string | undefined;
  try {
    text = JSON.stringify(v, (_key, x: unknown) => (typeof x === "bigint" ? bigintShown(x) : x));
  } catch {
    // Nesting past the stack (JSON.parse takes any depth) or a cycle (msgpackr's structured-clone
    // extensions decode one): String() would overflow the stack too, or join bigints in full.
    text = typeof v === "object" && v !== null ? "a value nested too deeply or containing itself" : undefined;
  }
  return shortened(text ?? String(v));
}

/**
 * msgpackr decodes a bigint of any length (extension 0x42). Writing one in decimal takes time that grows
 * with the square of its length: a 900 KB one held the main thread for a second, for a 2 MB message.
 */
function bigintShown(v: bigint): string {
  return BigInt.asIntN(64, v) === v ? `${v}n` : "a bigint beyond 64 bits";
}

function invalid(name: string, rule: string, v: unknown): RequestError {
  return new RequestError(`${name}: ${rule}, got ${shown(v)}`, { field: name });
}

// The checks below name a field as `at` + `key` ("items[3]." + "seed") and join the two only for an
// error message: otherwise each stream item, nearly always valid, would build a dozen names.

function str(v: unknown, at: string, key: string, maxChars = Infinity): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > maxChars) {
    throw invalid(at + key, maxChars === Infinity ? "must be a non-empty string" : `must be a string of 1 to ${maxChars} characters`, v);
  }
  return v;
}

function int(v: unknown, at: string, key: string, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) throw invalid(at + key, `must be an integer in [${lo}, ${hi}]`, v);
  return v;
}

function fraction(v: unknown, at: string, key: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw invalid(at + key, "must be a number in [0, 1]", v);
  return v;
}

function sloMs(v: unknown, at: string, key: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !(v > 0 && v <= MAX_SLO_MS)) throw invalid(at + key, `must be a number of milliseconds in (0, ${MAX_SLO_MS}]`, v);
  return v;
}

/** A measured time: bounded like an SLO, since the planners' latency histograms cannot hold any number. */
function measuredMs(v: unknown, at: string, key: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !(v >= 0 && v <= MAX_SLO_MS)) throw invalid(at + key, `must be a number of milliseconds in [0, ${MAX_SLO_MS}]`, v);
  return v;
}

function bool(v: unknown, at: string, key: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw invalid(at + key, "must be true or false", v);
  return v;
}

/** A field that also has an alias (`sloLevel` / `slo_level`): either, or both when they agree. */
function aliased<T>(obj: Obj, key: string, alias: string, at: string, read: (v: unknown, at: string, key: string) => T | undefined): T | undefined {
  const a = read(field(obj, key), at, key);
  const b = read(field(obj, alias), at, alias);
  if (a !== undefined && b !== undefined && String(a).toLowerCase() !== String(b).toLowerCase()) {
    throw new RequestError(`${at}${key}: disagrees with ${at}${alias} (${shown(a)} vs ${shown(b)}); send one of them`, { field: `${at}${key}` });
  }
  return a ?? b;
}

// ---- headers ----

const DECIMAL_RE = /^\+?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A header's number; "" (uWebSockets.js's absent header) is undefined. */
function headerNumber(raw: string, name: string): number | undefined {
  const text = raw.trim();
  if (text === "") return undefined;
  if (!DECIMAL_RE.test(text)) throw invalid(`header ${name}`, "must be a decimal number", text);
  return Number(text);
}

/** The SLO headers SPEC.md §6 lets any pick carry; absent ones are "". */
export interface SloHeaders {
  level: string;
  ttftMs: string;
  tpotMs: string;
}

export const NO_SLO_HEADERS: SloHeaders = Object.freeze({ level: "", ttftMs: "", tpotMs: "" });

interface SloOverrides {
  sloLevel?: string;
  sloTtftMs?: number;
  sloTpotMs?: number;
}

/** What no SLO headers override: nothing (every stream item, and most HTTP picks). */
const NO_OVERRIDES: SloOverrides = Object.freeze({});

function sloFromHeaders(h: SloHeaders): SloOverrides {
  if (h.level === "" && h.ttftMs === "" && h.tpotMs === "") return NO_OVERRIDES;
  const level = h.level.trim();
  return {
    sloLevel: level === "" ? undefined : level,
    sloTtftMs: sloMs(headerNumber(h.ttftMs, "x-slo-ttft-ms"), "header ", "x-slo-ttft-ms"),
    sloTpotMs: sloMs(headerNumber(h.tpotMs, "x-slo-tpot-ms"), "header ", "x-slo-tpot-ms"),
  };
}

// ---- picks ----

/**
 * A `POST /v1/pick` body (or a stream item, with `at` naming it) and the request's SLO headers as a
 * PickInput. Each SLO header that is present wins over the body's field: a gateway or proxy can set
 * headers per route or tenant but cannot rewrite a body, so the header is the operator's word.
 */
export function decodePick(body: unknown, headers: SloHeaders = NO_SLO_HEADERS, at = ""): PickInput {
  const obj = body === undefined ? {} : body;
  if (!isObject(obj)) throw invalid(at === "" ? "body" : at.slice(0, -1), "must be an object", body);
  const fromHeaders = sloFromHeaders(headers);
  str(field(obj, "model"), at, "model");
  const prompt = field(obj, "prompt");
  if (prompt !== undefined && typeof prompt !== "string") throw invalid(`${at}prompt`, "must be a string", prompt);
  // An exact count beats the estimate from the prompt's length.
  let inputTokens = int(field(obj, "inputTokens"), at, "inputTokens", 0, MAX_TOKENS);
  if (inputTokens === undefined && prompt !== undefined) {
    inputTokens = Math.ceil(prompt.length / CHARS_PER_TOKEN);
    if (inputTokens > MAX_TOKENS) throw invalid(`${at}prompt`, `must be at most ${MAX_TOKENS * CHARS_PER_TOKEN} characters`, `${prompt.length} characters`);
  }
  const bodyLevel = aliased(obj, "sloLevel", "slo_level", at, str);
  const bodyTtftMs = sloMs(field(obj, "sloTtftMs"), at, "sloTtftMs");
  const bodyTpotMs = sloMs(field(obj, "sloTpotMs"), at, "sloTpotMs");
  return {
    requestId: str(field(obj, "requestId"), at, "requestId", MAX_REQUEST_ID_CHARS),
    sloLevel: fromHeaders.sloLevel ?? bodyLevel,
    inputTokens,
    outputTokens: aliased(obj, "maxTokens", "max_tokens", at, (v, at, key) => int(v, at, key, 0, MAX_TOKENS)),
    prefixHit: fraction(field(obj, "prefixHit"), at, "prefixHit"),
    sloTtftMs: fromHeaders.sloTtftMs ?? bodyTtftMs,
    sloTpotMs: fromHeaders.sloTpotMs ?? bodyTpotMs,
    priority: int(field(obj, "priority"), at, "priority", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    seed: int(field(obj, "seed"), at, "seed", 0, MAX_SEED),
    explain: bool(field(obj, "explain"), at, "explain"),
  };
}

/** What the gateway sub-request form reads; absent headers are "". */
export interface GatewayHeaders extends SloHeaders {
  requestId: string;
  promptTokens: string;
  originalContentLength: string;
  priority: string;
}

/**
 * `/v1/gateway/pick[/*]`: headers only. ISL from x-prompt-tokens, else estimated from the
 * original body's length (x-original-content-length, bytes / 4) as a prompt's is. The length is only
 * an estimate, and the gateway has its own body limit (64 MB in deploy/), so a body longer than
 * MAX_TOKENS prompt tokens would take counts as MAX_TOKENS rather than being refused.
 */
export function decodeGatewayPick(h: GatewayHeaders): PickInput {
  const slo = sloFromHeaders(h);
  const tokens = int(headerNumber(h.promptTokens, "x-prompt-tokens"), "header ", "x-prompt-tokens", 0, MAX_TOKENS);
  const bytes = int(headerNumber(h.originalContentLength, "x-original-content-length"), "header ", "x-original-content-length", 0, Number.MAX_SAFE_INTEGER);
  const requestId = h.requestId.trim();
  return {
    requestId: str(requestId === "" ? undefined : requestId, "header ", "x-request-id", MAX_REQUEST_ID_CHARS),
    sloLevel: slo.sloLevel,
    sloTtftMs: slo.sloTtftMs,
    sloTpotMs: slo.sloTpotMs,
    inputTokens: tokens ?? (bytes === undefined ? undefined : Math.min(MAX_TOKENS, Math.ceil(bytes / CHARS_PER_TOKEN))),
    priority: headerPriority(h.priority),
  };
}

/** Priorities are signed (negative is sheddable), which the unsigned decimal pattern does not allow. */
function headerPriority(raw: string): number | undefined {
  const text = raw.trim();
  if (text === "") return undefined;
  if (!/^[+-]?\d{1,15}$/.test(text)) throw invalid("header x-headroom-priority", "must be an integer", text);
  return Number(text);
}

/** `POST /v1/route`: the level from the header, else the body. */
export function decodeRouteLevel(body: unknown, headerLevel: string): string | undefined {
  const obj = body === undefined ? {} : body;
  if (!isObject(obj)) throw invalid("body", "must be an object", body);
  const fromBody = aliased(obj, "sloLevel", "slo_level", "", str);
  const header = headerLevel.trim();
  return header === "" ? fromBody : header;
}

// ---- reports and pods ----

function report(v: unknown, at: string): CompletionReport {
  if (!isObject(v)) throw invalid(at === "" ? "body" : at.slice(0, -1), "must be a report object", v);
  const requestId = str(field(v, "requestId"), at, "requestId", MAX_REQUEST_ID_CHARS);
  if (requestId === undefined) throw invalid(`${at}requestId`, "is required", undefined);
  const ok = bool(field(v, "ok"), at, "ok");
  if (ok === undefined) throw invalid(`${at}ok`, "is required (true or false)", undefined);
  const out: CompletionReport = { requestId, ok };
  const ttftMs = measuredMs(field(v, "ttftMs"), at, "ttftMs");
  const tpotMs = measuredMs(field(v, "tpotMs"), at, "tpotMs");
  const inputTokens = int(field(v, "inputTokens"), at, "inputTokens", 0, MAX_TOKENS);
  const outputTokens = int(field(v, "outputTokens"), at, "outputTokens", 0, MAX_TOKENS);
  const decode = str(field(v, "decode"), at, "decode", MAX_ADDRESS_CHARS);
  if (ttftMs !== undefined) out.ttftMs = ttftMs;
  if (tpotMs !== undefined) out.tpotMs = tpotMs;
  if (inputTokens !== undefined) out.inputTokens = inputTokens;
  if (outputTokens !== undefined) out.outputTokens = outputTokens;
  if (decode !== undefined) out.decode = decode;
  return out;
}

/** One report or `{"reports":[…]}`, every item validated before any is returned. */
export function decodeReports(body: unknown): CompletionReport[] {
  if (isObject(body) && Object.hasOwn(body, "reports")) {
    const list = body.reports;
    if (!Array.isArray(list)) throw invalid("reports", "must be an array of reports", list);
    return list.map((item, i) => report(item, `reports[${i}].`));
  }
  return [report(body, "")];
}

/** Reports of a stream frame. */
export function decodeReportItems(items: unknown[]): CompletionReport[] {
  return items.map((item, i) => report(item, `items[${i}].`));
}

/**
 * One pod or `{"pods":[…]}` as fresh objects of the pods' own fields; the engine validates the fields
 * against the configuration's pod schema, all or none.
 */
export function decodePods(body: unknown): PodPush[] {
  const many = isObject(body) && Object.hasOwn(body, "pods");
  const list: unknown = many ? (body as Obj).pods : [body];
  if (!Array.isArray(list)) throw invalid("pods", "must be an array of pods", list);
  return list.map((item, i) => {
    // Named as the engine names them, one pod or many.
    const at = `pods[${i}]`;
    if (!isObject(item)) throw invalid(at, "must be a pod object", item);
    // Own data properties only: assigning a "__proto__" key would set the object's prototype instead
    // (found by fuzzing); as an own property it is an unknown field, refused by the pod schema.
    const pod: Obj = Object.fromEntries(Object.entries(item).filter(([, v]) => v !== null));
    if (typeof pod.pool !== "string" || pod.pool === "") throw invalid(`${at}.pool`, "must be a pool name", pod.pool);
    if (typeof pod.address !== "string" || pod.address === "") throw invalid(`${at}.address`, "must be host:port", pod.address);
    return pod as unknown as PodPush;
  });
}

/** A `DELETE /v1/pods/{address}` path segment, percent-decoded. */
export function decodeAddressParam(raw: string): string {
  let address: string;
  try {
    address = decodeURIComponent(raw);
  } catch {
    throw invalid("path address", "must be a percent-encoded host:port", raw);
  }
  if (address === "") throw invalid("path address", "must be host:port", raw);
  return address;
}

// ---- stream frames ----

export type StreamFrame = { t: "pick"; items: unknown[] } | { t: "report"; items: unknown[] };

/**
 * A `WS /v1/stream` frame: `{"t":"pick"|"report","items":[…]}`. The common shape is read straight from
 * the bytes (src/server/frame-reader.ts), anything else by msgpackr: `path-stream` in bench:pick-path-ab
 * took 0.95-1.03 of the CPU per pick of the code that read every frame with msgpackr (median 0.97, both
 * orders three times).
 */
export function decodeFrame(bytes: Uint8Array): StreamFrame {
  return readFrame(bytes) ?? decodeFrameWithMsgpackr(bytes);
}

/** decodeFrame by msgpackr alone: what it does with a frame the fast reader leaves, and the reference its tests compare with. */
export function decodeFrameWithMsgpackr(bytes: Uint8Array): StreamFrame {
  const frame = decodeMsgpack(bytes, "frame");
  if (!isObject(frame)) throw invalid("frame", "must be a map {t, items}", frame);
  const t = field(frame, "t");
  const items = field(frame, "items");
  if (t !== "pick" && t !== "report") throw invalid("frame.t", 'must be "pick" or "report"', t);
  if (!Array.isArray(items)) throw invalid("frame.items", "must be an array", items);
  return { t, items };
}

/** A stream answer item: the compact pick, or its error. */
export type CompactItem =
  | { requestId: string; pool: string; prefill?: string; decode: string; outcome: string; ttftMs: number; tpotMs: number }
  | { error: { code: string; message: string } };

export function compactPick(answer: PickAnswer | HeadroomError): CompactItem {
  if (answer instanceof HeadroomError) return { error: { code: answer.code, message: answer.message } };
  return {
    requestId: answer.requestId,
    pool: answer.pool,
    prefill: answer.prefill,
    decode: answer.decode,
    outcome: answer.outcome,
    ttftMs: answer.predicted.ttftMs,
    tpotMs: answer.predicted.tpotMs,
  };
}
