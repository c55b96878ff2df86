// A latency profile of one model on one kind of GPU: prefill time vs prompt tokens, decode step time vs
// batch and context, and the KV capacity the hardware leaves. Read from a CSV of measurements
// (phase,batch,tokens,ms) such as deploy/profiles/h100_llama3_8b_bf16.csv, with an optional
// `<name>.meta.json` beside it.

import { existsSync, readFileSync } from "node:fs";
import { parse } from "csv-parse/sync";
import { ConfigError } from "../errors.js";
import { shippedFile } from "../paths.js";

/** What the CSV does not say; the shipped profile's values are the defaults for profiles without a meta file. */
export interface ProfileHardware {
  gpuMemoryGiB: number;
  /** Model weights of the whole model; a TP=t worker holds 1/t of them per GPU. */
  weightsGiB: number;
  kvBytesPerToken: number;
}

export const DEFAULT_HARDWARE: Readonly<ProfileHardware> = Object.freeze({
  gpuMemoryGiB: 80,
  weightsGiB: 15,
  kvBytesPerToken: 131_072,
});

/** Decode step time model fitted to the profile: stepMs = c0 + perSequenceMs * batch + perKvTokenMs * kvTokens. */
export interface DecodeStepModel {
  c0: number;
  perSequenceMs: number;
  perKvTokenMs: number;
}

export const SHIPPED_PROFILE_CSV = shippedFile("deploy", "profiles", "h100_llama3_8b_bf16.csv");

const GIB = 1024 ** 3;

export class LatencyProfile {
  private constructor(
    readonly name: string,
    /** Batch-1 prefill measurements, ascending in tokens. */
    private readonly prefillTokens: Float64Array,
    private readonly prefillTimes: Float64Array,
    readonly decode: Readonly<DecodeStepModel>,
    readonly hardware: Readonly<ProfileHardware>,
    /** Largest relative error of the decode model over the profile's decode rows. */
    readonly decodeFitError: number,
  ) {}

  /** Reads `<csvPath>` and, if present, the `.meta.json` beside it. Problems become a ConfigError naming the file. */
  static load(name: string, csvPath: string): LatencyProfile {
    let text: string;
    try {
      text = readFileSync(csvPath, "utf8");
    } catch (err) {
      throw new ConfigError([`predictors.profiles.${name}: cannot read ${csvPath}: ${(err as Error).message}`], "CONFIG_UNREADABLE");
    }
    const metaPath = csvPath.replace(/\.csv$/i, "") + ".meta.json";
    let meta: unknown;
    if (metaPath !== csvPath && existsSync(metaPath)) {
      try {
        meta = JSON.parse(readFileSync(metaPath, "utf8"));
      } catch (err) {
        throw new ConfigError([`predictors.profiles.${name}: ${metaPath} is not JSON: ${(err as Error).message}`]);
      }
    }
    return LatencyProfile.parse(name, text, meta, csvPath);
  }

  /** The profile shipped with headroom (a Llama-3-8B-shaped model on one H100). */
  static shipped(name: string): LatencyProfile {
    return LatencyProfile.load(name, SHIPPED_PROFILE_CSV);
  }

  static parse(name: string, csvText: string, meta?: unknown, source = name): LatencyProfile {
    const problems: string[] = [];
    const where = `predictors.profiles.${name} (${source})`;
    let rows: Record<string, string>[] = [];
    try {
      rows = parse(csvText, { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
    } catch (err) {
      throw new ConfigError([`${where}: not a CSV of phase,batch,tokens,ms: ${(err as Error).message}`]);
    }
    const prefill = new Map<number, number>();
    const decodeRows: { batch: number; tokens: number; ms: number }[] = [];
    // A repeated measurement is refused: which of two rows is right is the user's to say, and keeping
    // one or averaging them would hide that they disagree.
    const firstLine = new Map<string, number>();
    rows.forEach((row, i) => {
      const line = i + 2;
      const phase = row.phase;
      const batch = Number(row.batch);
      const tokens = Number(row.tokens);
      const ms = Number(row.ms);
      if (phase !== "prefill" && phase !== "decode") {
        problems.push(`${where} line ${line}: phase must be prefill or decode, got ${JSON.stringify(phase)}`);
        return;
      }
      if (!(Number.isInteger(batch) && batch >= 1) || !(Number.isInteger(tokens) && tokens >= 1) || !(Number.isFinite(ms) && ms > 0)) {
        problems.push(`${where} line ${line}: batch and tokens must be integers >= 1 and ms a number > 0, got ${batch},${tokens},${row.ms}`);
        return;
      }
      const key = `${phase},${batch},${tokens}`;
      const first = firstLine.get(key);
      if (first !== undefined) {
        problems.push(`${where} line ${line}: repeats line ${first} (${phase}, batch ${batch}, ${tokens} tokens); keep one row per measurement point (average repeated runs before writing the profile)`);
        return;
      }
      firstLine.set(key, line);
      if (phase === "prefill") {
        if (batch === 1) prefill.set(tokens, ms);
      } else decodeRows.push({ batch, tokens, ms });
    });
    if (prefill.size < 2) problems.push(`${where}: needs prefill rows at batch 1 for at least two token counts`);
    const hardware = parseHardware(meta, where, problems);
    let fit: { model: DecodeStepModel; maxError: number } | null = null;
    if (decodeRows.length < 3) problems.push(`${where}: needs at least three decode rows`);
    else {
      fit = fitDecode(decodeRows);
      if (fit === null) problems.push(`${where}: decode rows must vary in both batch and context to fit step time`);
    }
    if (problems.length > 0 || fit === null) throw new ConfigError(problems);

    const tokens = [...prefill.keys()].sort((a, b) => a - b);
    // Never less time for more tokens: a noisy row below the one before it is raised to it, so that
    // neither interpolation nor the last segment's extension falls as prompts grow.
    const times = Float64Array.from(tokens, (t) => prefill.get(t)!);
    for (let i = 1; i < times.length; i++) times[i] = Math.max(times[i], times[i - 1]);
    return new LatencyProfile(
      name,
      Float64Array.from(tokens),
      times,
      Object.freeze(fit.model),
      Object.freeze(hardware),
      fit.maxError,
    );
  }

  /**
   * Prefill compute for a prompt of `tokens` uncached tokens at TP 1: linear between measurements,
   * the first measurement below them (a forward pass has a fixed cost), the last segment extended above.
   */
  prefillMs(tokens: number): number {
    const xs = this.prefillTokens;
    const ys = this.prefillTimes;
    const last = xs.length - 1;
    if (tokens <= xs[0]) return ys[0];
    let seg = 0;
    if (tokens >= xs[last]) seg = last - 1;
    else while (xs[seg + 1] < tokens) seg++;
    return ys[seg] + ((tokens - xs[seg]) * (ys[seg + 1] - ys[seg])) / (xs[seg + 1] - xs[seg]);
  }

  /** One decode step for `batch` sequences holding `kvTokens` cached tokens in all, at TP 1. */
  stepMs(batch: number, kvTokens: number): number {
    const m = this.decode;
    return m.c0 + m.perSequenceMs * batch + m.perKvTokenMs * kvTokens;
  }

  /** KV tokens a worker of `tp` GPUs holds when vLLM may use `gpuMemoryUtilization` of each GPU's memory. */
  kvCapacityTokens(tp: number, gpuMemoryUtilization: number): number {
    const h = this.hardware;
    const perGpuGiB = h.gpuMemoryGiB * gpuMemoryUtilization - h.weightsGiB / tp;
    return Math.max(0, Math.floor((tp * perGpuGiB * GIB) / h.kvBytesPerToken));
  }
}

function parseHardware(meta: unknown, where: string, problems: string[]): ProfileHardware {
  const section = isObject(meta) && isObject(meta.headroom) ? meta.headroom : {};
  const out: ProfileHardware = { ...DEFAULT_HARDWARE };
  for (const key of Object.keys(DEFAULT_HARDWARE) as (keyof ProfileHardware)[]) {
    const v = section[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      problems.push(`${where}: meta.json headroom.${key} must be a number > 0, got ${JSON.stringify(v)}`);
    } else out[key] = v;
  }
  if (out.weightsGiB >= out.gpuMemoryGiB) problems.push(`${where}: meta.json headroom.weightsGiB must be < gpuMemoryGiB`);
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Least squares of relative error for stepMs = c0 + c1 * batch + c2 * batch * tokens, every coefficient
 * kept >= 0 (a coefficient that comes out negative is fixed at 0 and the rest refitted). Null when the
 * rows cannot determine the model.
 */
function fitDecode(rows: { batch: number; tokens: number; ms: number }[]): { model: DecodeStepModel; maxError: number } | null {
  const features = rows.map((r) => [1, r.batch, r.batch * r.tokens]);
  let active = [0, 1, 2];
  for (let round = 0; round < 3; round++) {
    const coef = solveWeighted(features, rows.map((r) => r.ms), active);
    if (coef === null) return null;
    const negative = active.filter((_, j) => coef[j] < 0);
    if (negative.length === 0) {
      const full = [0, 0, 0];
      active.forEach((k, j) => (full[k] = coef[j]));
      const model = { c0: full[0], perSequenceMs: full[1], perKvTokenMs: full[2] };
      let maxError = 0;
      for (const r of rows) {
        const predicted = model.c0 + model.perSequenceMs * r.batch + model.perKvTokenMs * r.batch * r.tokens;
        maxError = Math.max(maxError, Math.abs(predicted - r.ms) / r.ms);
      }
      return { model, maxError };
    }
    active = active.filter((k) => !negative.includes(k));
    if (active.length === 0) return null;
  }
  return null;
}

/**
 * Weighted normal equations (weights 1/y^2) over the chosen columns, by Gaussian elimination on columns
 * scaled to a maximum of 1 (batch x tokens reaches 10^5 where the intercept is 1).
 */
function solveWeighted(x: number[][], y: number[], cols: number[]): number[] | null {
  const k = cols.length;
  const scale = cols.map((c) => Math.max(...x.map((row) => Math.abs(row[c]))) || 1);
  const a = Array.from({ length: k }, () => new Array<number>(k + 1).fill(0));
  for (let i = 0; i < y.length; i++) {
    const w = 1 / (y[i] * y[i]);
    for (let r = 0; r < k; r++) {
      const xr = x[i][cols[r]] / scale[r];
      for (let c = 0; c < k; c++) a[r][c] += w * xr * (x[i][cols[c]] / scale[c]);
      a[r][k] += w * xr * y[i];
    }
  }
  for (let c = 0; c < k; c++) {
    let pivot = c;
    for (let r = c + 1; r < k; r++) if (Math.abs(a[r][c]) > Math.abs(a[pivot][c])) pivot = r;
    if (Math.abs(a[pivot][c]) < 1e-9) return null;
    [a[c], a[pivot]] = [a[pivot], a[c]];
    for (let r = 0; r < k; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      for (let j = c; j <= k; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row, r) => row[k] / row[r] / scale[r]);
}
