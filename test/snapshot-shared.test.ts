// The shared snapshot (SPEC.md §3): what the main thread publishes, a reader in another thread copies
// whole — never a mix of two versions — and a WASM kernel in a worker picks from it exactly as the
// main thread's twin does on the same snapshot.

import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { RetiredSnapshotError, SharedSnapshotReader, SharedSnapshotWriter } from "../src/kernel/shared-snapshot.js";
import { pickRows } from "../src/engine/worker.js";
import { encodeRequests } from "../src/engine/worker-protocol.js";
import { TwinKernel } from "../src/kernel/twin.js";
import type { PoolSnapshot } from "../src/kernel/types.js";
import { readResults } from "../src/kernel/wasm.js";
import { PARAMS, request, snapshot, TOPOLOGY } from "./fixtures/pools.js";

const WORKER = new URL("./fixtures/snapshot-reader.worker.mjs", import.meta.url);

/** Every value of the snapshot set to `v` (gridTokens strictly increasing from v). */
function uniform(v: number, pods: number, grid = 4): PoolSnapshot {
  const snap = snapshot(
    Array.from({ length: pods }, (_, i) => ({ role: i % 2 ? ("decode" as const) : ("prefill" as const) })),
    Array.from({ length: grid }, (_, g) => v + g),
    v,
  );
  for (const name of ["prefillMs", "prefillLoadMs", "localPrefillMs", "decodeWaitMs", "tpotMs", "prefillQueueMs", "decodeQueueMs", "tpotLoadMs", "waitPerRequestMs", "tpotPerRequestMs", "tpotPerTokenMs"] as const) {
    snap[name].fill(v);
  }
  return snap;
}

function run<T>(workerData: Record<string, unknown>, onReady?: () => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData });
    worker.on("message", (msg) => {
      if (msg.ready) onReady?.();
      else {
        resolve(msg as T);
        void worker.terminate();
      }
    });
    worker.on("error", reject);
  });
}

describe("publishing and reading", () => {
  it("a reader copies the published snapshot, then only the loads when in-flight load moves", () => {
    const writer = new SharedSnapshotWriter(4, 2);
    const snap = snapshot(
      [
        { role: "prefill", prefillMs: [10, 20], rack: 3, node: 1 },
        { role: "decode", decodeWaitMs: [1, 2], tpotMs: [5, 6], waitPerRequestMs: 0.5, tpotPerTokenMs: 0.001 },
        { role: "both", eligible: false, prefillQueueMs: 7 },
      ],
      [100, 1000],
      9,
    );
    writer.publish(snap);
    const reader = new SharedSnapshotReader(writer.shared);
    const first = reader.read();
    expect(first.changed).toBe("all");
    expect(first.snapshot).toEqual(snap);
    expect(reader.read().changed).toBe("none");
    writer.addLoad(2, 3, 4, 5);
    const second = reader.read();
    expect(second.changed).toBe("loads");
    expect([second.snapshot.prefillQueueMs[2], second.snapshot.decodeQueueMs[2], second.snapshot.tpotLoadMs[2]]).toEqual([10, 4, 5]);
    expect(() => writer.addLoad(3, 1, 1, 1)).toThrow(RangeError);
  });

  it("a grid that outgrows the buffer grows the grid alone: the pod capacity stays while the pods fit", () => {
    const writer = new SharedSnapshotWriter(4, 2);
    for (let grid = 3; grid <= 64; grid++) {
      writer.publish(uniform(grid, 3, grid));
      expect(writer.shared.byteLength).toBe(new SharedSnapshotWriter(4, grid).shared.byteLength);
      expect(new SharedSnapshotReader(writer.shared).read().snapshot).toEqual(uniform(grid, 3, grid));
    }
  });

  it("versions past 2^31 come out as published, and a new version 0xffffffff is copied whole", () => {
    const writer = new SharedSnapshotWriter(4, 2);
    const reader = new SharedSnapshotReader(writer.shared);
    for (const version of [0xffffffff, 0x80000000, 0x7fffffff]) {
      const snap = { ...uniform(1, 3, 2), version };
      writer.publish(snap);
      expect(writer.version).toBe(version);
      expect(reader.publishedVersion()).toBe(version);
      const { snapshot: read, changed } = reader.read();
      expect(changed).toBe("all");
      expect(read).toEqual(snap);
    }
  });

  it("a snapshot that outgrows the buffer moves to a larger one and retires the old one", () => {
    const writer = new SharedSnapshotWriter(2, 2);
    writer.publish(uniform(1, 2, 2));
    const old = new SharedSnapshotReader(writer.shared);
    expect(old.read().snapshot.pods).toBe(2);
    writer.publish(uniform(2, 40, 8));
    expect(() => old.read()).toThrow(RetiredSnapshotError);
    const fresh = new SharedSnapshotReader(writer.shared);
    expect(fresh.read().snapshot).toEqual(uniform(2, 40, 8));
  });
});

describe("across threads", () => {
  it("a reader in a worker never sees a torn snapshot while the main thread publishes", async () => {
    const writer = new SharedSnapshotWriter(256, 8);
    writer.publish(uniform(1, 256, 8));
    const stop = new SharedArrayBuffer(4);
    const publishes = 3000;
    const result = await run<{ reads: number; torn: number; changes: number }>({ mode: "torn", buffer: writer.shared, stop }, () => {
      for (let v = 2; v <= publishes; v++) writer.publish(uniform(v, 256, 8));
      Atomics.store(new Int32Array(stop), 0, 1);
    });
    expect(result.torn).toBe(0);
    expect(result.changes).toBeGreaterThan(0);
  });

  it("a worker knows a buffer it already reads when a later message brings it again, and a replaced one as new", async () => {
    const writer = new SharedSnapshotWriter(2, 2);
    writer.publish(uniform(1, 2, 2));
    const first = writer.shared;
    const other = new SharedSnapshotWriter(2, 2);
    writer.publish(uniform(2, 40, 8));
    const worker = new Worker(WORKER, { workerData: { mode: "attach", buffer: first } });
    try {
      const answers: boolean[] = [];
      const buffers = [first, first, writer.shared, other.shared, new SharedArrayBuffer(8)];
      await new Promise<void>((resolve, reject) => {
        worker.on("error", reject);
        worker.on("message", (msg: { ready?: true; reads?: boolean }) => {
          if (msg.ready) for (const buffer of buffers) worker.postMessage({ buffer });
          else if (answers.push(msg.reads!) === buffers.length) resolve();
        });
      });
      expect(answers).toEqual([true, true, false, false, false]);
    } finally {
      await worker.terminate();
    }
  });

  it("a worker's batch whose buffer the pool outgrew before it ran asks to be picked again (null) instead of failing", () => {
    const writer = new SharedSnapshotWriter(2, 2);
    writer.publish(uniform(1, 2, 2));
    const task = (buffer: SharedArrayBuffer) => ({
      pool: "retired-test",
      buffer,
      params: PARAMS,
      topology: TOPOLOGY,
      paramsVersion: 1,
      batchCapacity: 4,
      requests: encodeRequests([request({ inputTokens: 100, seed: 1 })]),
    });
    const old = writer.shared;
    const version = (rows: Float64Array | null) => (rows === null ? null : readResults(rows)[0].version);
    expect(version(pickRows(task(old)))).toBe(1);
    writer.publish(uniform(2, 40, 8));
    expect(pickRows(task(old))).toBeNull();
    expect(version(pickRows(task(writer.shared)))).toBe(2);
    expect(pickRows(task(old))).toBeNull();
  });

  it("a WASM kernel in a worker picks from the shared snapshot what the twin picks from the original", async () => {
    const snap = snapshot(
      Array.from({ length: 24 }, (_, i) => ({
        role: (["prefill", "decode", "both"] as const)[i % 3],
        rack: i % 2,
        node: i % 4,
        prefillMs: [20 + i, 200 + 3 * i],
        decodeWaitMs: [i % 5, 2 * (i % 5)],
        tpotMs: [10 + (i % 7), 12 + (i % 7)],
        waitPerRequestMs: 1,
        tpotPerRequestMs: 0.01,
      })),
      [128, 4096],
      5,
    );
    const writer = new SharedSnapshotWriter(8, 2);
    writer.publish(snap);
    const requests = Array.from({ length: 12 }, (_, k) =>
      request({ inputTokens: 100 + 300 * k, sloTtftMs: 150 + 20 * k, sloTpotMs: 20, seed: 1000 + k }),
    );
    const twin = new TwinKernel(PARAMS, TOPOLOGY);
    twin.loadSnapshot(snap);
    const expected = twin.pick(requests, 5);
    const got = await run<{ version: number; results: unknown[] }>({ mode: "pick", buffer: writer.shared, params: PARAMS, topology: TOPOLOGY, requests });
    expect(got.version).toBe(5);
    expect(got.results).toEqual(expected);
  });
});
