// The latency profile and the `profile` predictor (SPEC.md §4): the shipped CSV read and fitted, bad
// profiles refused with the line named, and predictions that follow the pod's state the right way.

import fc from "fast-check";
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.js";
import { LatencyProfile, SHIPPED_PROFILE_CSV } from "../src/predictors/latency-profile.js";
import { FIRST_TOKEN_STEPS, MAX_PREDICTION_MS, ProfilePredictor, tpSpeedup } from "../src/predictors/profile.js";
import { allocatePredictions, logGrid, type PodFeatures } from "../src/predictors/types.js";
import { podFeatures } from "./fixtures/features.js";

const csv = readFileSync(SHIPPED_PROFILE_CSV, "utf8");
const rows = csv
  .trim()
  .split("\n")
  .slice(1)
  .map((line) => line.split(","))
  .map(([phase, batch, tokens, ms]) => ({ phase, batch: Number(batch), tokens: Number(tokens), ms: Number(ms) }));
const profile = LatencyProfile.shipped("h100");
const profiles = new Map([["h100", profile]]);
const predictor = new ProfilePredictor({ profiles, tpEfficiency: 0.85 });

function pod(over: Partial<PodFeatures> = {}): PodFeatures {
  return podFeatures("h100", over);
}

describe("the shipped profile", () => {
  // The measured profile lives beside the project on the machines it is developed on, not in a clone.
  const measured = new URL("../../shared/profiles/h100_llama3_8b_bf16.csv", import.meta.url);
  it.skipIf(!existsSync(measured))("is a copy of the measured profile", () => {
    expect(csv).toBe(readFileSync(measured, "utf8"));
  });

  it("reproduces every batch-1 prefill measurement", () => {
    const prefill = rows.filter((r) => r.phase === "prefill" && r.batch === 1);
    expect(prefill.length).toBeGreaterThan(5);
    for (const r of prefill) expect(profile.prefillMs(r.tokens)).toBeCloseTo(r.ms, 9);
  });

  it("interpolates prefill between measurements and keeps it increasing", () => {
    const at = (t: number) => profile.prefillMs(t);
    expect(at(768)).toBeCloseTo((at(512) + at(1024)) / 2, 9);
    expect(at(1)).toBe(at(128));
    for (let t = 128; t < 40_000; t += 97) expect(at(t + 97)).toBeGreaterThan(at(t));
  });

  it("fits decode step time within 10 % of every decode measurement, with non-negative terms", () => {
    const decode = rows.filter((r) => r.phase === "decode");
    let worst = 0;
    for (const r of decode) worst = Math.max(worst, Math.abs(profile.stepMs(r.batch, r.batch * r.tokens) - r.ms) / r.ms);
    expect(worst).toBeLessThan(0.1);
    expect(worst).toBeCloseTo(profile.decodeFitError, 12);
    expect(profile.decode.c0).toBeGreaterThan(0);
    expect(profile.decode.perSequenceMs).toBeGreaterThan(0);
    expect(profile.decode.perKvTokenMs).toBeGreaterThan(0);
  });

  it("derives KV capacity from GPU memory, utilization, weights and TP", () => {
    const gib = 1024 ** 3;
    expect(profile.kvCapacityTokens(1, 0.9)).toBe(Math.floor(((80 * 0.9 - 15) * gib) / 131072));
    expect(profile.kvCapacityTokens(2, 0.9)).toBe(Math.floor((2 * (80 * 0.9 - 7.5) * gib) / 131072));
  });
});

describe("bad profiles", () => {
  const refuse = (text: string, meta?: unknown) => {
    try {
      LatencyProfile.parse("bad", text, meta, "bad.csv");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.join("\n");
    }
    throw new Error("accepted a bad profile");
  };

  it("names the line and the values of a bad row", () => {
    expect(refuse(`${csv}prefill,1,-4,3.0\n`)).toMatch(/bad\.csv\) line 51: .*got 1,-4,3\.0/);
    expect(refuse(`${csv}train,1,4,3.0\n`)).toMatch(/line 51: phase must be prefill or decode, got "train"/);
    expect(refuse(`${csv}decode,2,512,NaN\n`)).toContain("line 51");
  });

  it("refuses profiles that cannot determine the curves", () => {
    expect(refuse("phase,batch,tokens,ms\nprefill,1,128,7\ndecode,1,512,6\n")).toMatch(/at least two token counts[\s\S]*three decode rows/);
    expect(refuse("phase,batch,tokens,ms\nprefill,1,128,7\nprefill,1,256,9\ndecode,1,512,6\ndecode,1,1024,6.1\ndecode,1,2048,6.2\n")).toContain(
      "must vary in both batch and context",
    );
    expect(refuse('phase,batch\n"unterminated')).toContain("not a CSV");
    expect(refuse(csv, { headroom: { gpuMemoryGiB: -80 } })).toContain("headroom.gpuMemoryGiB must be a number > 0, got -80");
  });

  it("a noisy row below the one before it never makes more tokens take less time", () => {
    const text = "phase,batch,tokens,ms\nprefill,1,4096,110\nprefill,1,8192,232\nprefill,1,16384,225\ndecode,1,512,6\ndecode,8,512,7\ndecode,8,4096,9\n";
    const p = LatencyProfile.parse("noisy", text, undefined, "noisy.csv");
    expect(p.prefillMs(16_384)).toBe(232);
    let before = 0;
    for (const tokens of [4096, 8192, 12_000, 16_384, 65_536, 200_000]) {
      expect(p.prefillMs(tokens), `${tokens} tokens`).toBeGreaterThanOrEqual(before);
      before = p.prefillMs(tokens);
    }
  });

  it("a repeated measurement point is refused, naming both lines, instead of the last row winning", () => {
    // Appended, this row used to replace the 1,024-token measurement (25.8 ms) silently, and the raise
    // that keeps prefill increasing carried its 60 ms on to 2,048 tokens.
    const prefillLine = rows.findIndex((r) => r.phase === "prefill" && r.batch === 1 && r.tokens === 1024) + 2;
    expect(prefillLine).toBeGreaterThan(1);
    expect(refuse(`${csv}prefill,1,1024,60.0\n`)).toContain(`bad.csv) line 51: repeats line ${prefillLine} (prefill, batch 1, 1024 tokens)`);
    const decodeLine = rows.findIndex((r) => r.phase === "decode" && r.batch === 8 && r.tokens === 2048) + 2;
    expect(refuse(`${csv}decode,8,2048,7.7\n`)).toContain(`line 51: repeats line ${decodeLine} (decode, batch 8, 2048 tokens)`);
    // The same tokens at another batch, or in the other phase, is another point.
    expect(() => LatencyProfile.parse("ok", `${csv}prefill,3,1024,40.0\n`, undefined, "ok.csv")).not.toThrow();
  });

  it("a missing file is CONFIG_UNREADABLE and names the path", () => {
    expect(() => LatencyProfile.load("x", "/nonexistent/x.csv")).toThrow(/cannot read \/nonexistent\/x\.csv/);
  });
});

describe("the profile predictor", () => {
  const grid = logGrid(8, 64, 16384);
  const fill = (pods: PodFeatures[]) => {
    const out = allocatePredictions(pods.length, grid);
    predictor.fill("prefill-ttft", pods, out);
    predictor.fill("decode-ttft", pods, out);
    predictor.fill("decode-tpot", pods, out);
    return out;
  };

  it("prefill compute follows the profile, scaled by TP x efficiency", () => {
    const out = fill([pod(), pod({ tp: 2 })]);
    expect(tpSpeedup(2, 0.85)).toBeCloseTo(1.7, 12);
    for (let g = 0; g < grid.length; g++) {
      expect(out.prefillMs[g * 2]).toBeCloseTo(profile.prefillMs(grid[g]), 9);
      expect(out.prefillMs[g * 2 + 1]).toBeCloseTo(profile.prefillMs(grid[g]) / 1.7, 9);
      expect(out.localPrefillMs[g * 2]).toBeCloseTo(out.prefillMs[g * 2], 12);
    }
  });

  it("queues prefill behind our in-flight prompts and the scraped queue; a decode pod has no prefill queue", () => {
    const typical = profile.prefillMs(1024);
    const out = fill([pod({ prefillMsInFlight: 40, waiting: 2, running: 1 }), pod({ role: "decode", waiting: 5 })]);
    expect(out.prefillQueueMs[0]).toBeCloseTo(40 + 2 * typical + typical / 2, 9);
    expect(out.prefillQueueMs[1]).toBe(0);
  });

  it("TPOT is one decode step of the batch with this request, and the marginals are the fitted terms", () => {
    const busy = pod({ running: 30, decodeRequestsInFlight: 2, kvTokensUsed: 50_000, decodeTokensInFlight: 3000 });
    const out = fill([busy]);
    const g = 3;
    expect(out.tpotMs[g]).toBeCloseTo(profile.stepMs(33, 50_000 + 3000 + grid[g] + 128), 9);
    expect(out.tpotPerRequestMs[0]).toBe(profile.decode.perSequenceMs);
    expect(out.tpotPerTokenMs[0]).toBe(profile.decode.perKvTokenMs);
  });

  it("a decode pod with KV to spare gives the first token within 1.5 steps; one short of KV waits for running sequences to free it", () => {
    const roomy = pod({ running: 10, kvTokensUsed: 100_000 });
    const full = pod({ running: 10, kvTokensUsed: 399_000 });
    const out = fill([roomy, full]);
    const g = 4;
    expect(out.decodeWaitMs[g * 2]).toBeCloseTo(FIRST_TOKEN_STEPS * out.tpotMs[g * 2], 9);
    const step = out.tpotMs[g * 2 + 1];
    const deficit = 399_000 + grid[g] - 400_000;
    expect(deficit).toBeGreaterThan(0);
    expect(out.decodeWaitMs[g * 2 + 1]).toBeCloseTo(FIRST_TOKEN_STEPS * step + (deficit / 400_000) * 256 * step, 9);
    expect(out.waitPerRequestMs[0]).toBe(0);
    expect(out.waitPerRequestMs[1]).toBeGreaterThan(0);
  });

  it("a pod that can never admit the request gets the bounded maximum wait, not infinity", () => {
    const out = fill([pod({ kvCapacityTokens: 10 })]);
    expect(out.decodeWaitMs[grid.length - 1]).toBe(MAX_PREDICTION_MS);
  });

  it("more load never predicts less time, and every value is finite and >= 0", () => {
    const state = fc.record({
      waiting: fc.integer({ min: 0, max: 500 }),
      running: fc.integer({ min: 0, max: 512 }),
      kvTokensUsed: fc.integer({ min: 0, max: 500_000 }),
      decodeRequestsInFlight: fc.integer({ min: 0, max: 100 }),
      prefillMsInFlight: fc.double({ min: 0, max: 1e5, noNaN: true }),
      tp: fc.constantFrom(1, 2, 4, 8),
    });
    fc.assert(
      fc.property(state, fc.integer({ min: 1, max: 50 }), (s, extra) => {
        const a = pod(s);
        const b = pod({ ...s, waiting: s.waiting + extra, kvTokensUsed: s.kvTokensUsed + extra * 100, decodeRequestsInFlight: s.decodeRequestsInFlight + 1 });
        const out = fill([a, b]);
        for (const name of ["prefillMs", "localPrefillMs", "decodeWaitMs", "tpotMs", "prefillQueueMs", "waitPerRequestMs"] as const) {
          for (const v of out[name]) expect(Number.isFinite(v) && v >= 0).toBe(true);
        }
        expect(out.prefillQueueMs[1]).toBeGreaterThanOrEqual(out.prefillQueueMs[0]);
        for (let g = 0; g < grid.length; g++) {
          expect(out.tpotMs[g * 2 + 1]).toBeGreaterThanOrEqual(out.tpotMs[g * 2]);
          expect(out.decodeWaitMs[g * 2 + 1]).toBeGreaterThanOrEqual(out.decodeWaitMs[g * 2]);
        }
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it("refuses a pod naming an unknown profile", () => {
    expect(() => fill([pod({ profile: "a100" })])).toThrow(/unknown profile a100/);
  });
});
