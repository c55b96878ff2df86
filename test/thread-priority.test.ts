// setThreadNice on real threads: it lowers a thread's priority and never raises it, which would need a
// privilege (a process started under `nice -n 15` asking for 10).

import { existsSync } from "node:fs";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { setThreadNice } from "../src/thread-priority.js";
import { threadNices } from "./fixtures/threads.js";

const WORKER = new URL("./fixtures/thread-nice.worker.mjs", import.meta.url);

async function nicesAfter(steps: number[]): Promise<{ nices: number[]; error?: string }> {
  const worker = new Worker(WORKER, { workerData: { steps } });
  const [answer] = (await once(worker, "message")) as [{ nices: number[]; error?: string }];
  await worker.terminate();
  return answer;
}

// Linux only: elsewhere a thread has no priority of its own.
describe.runIf(existsSync("/proc/thread-self"))("setThreadNice", () => {
  it("lowers the calling thread's priority to the value asked", async () => {
    expect(await nicesAfter([5, 12])).toEqual({ nices: [5, 12] });
  });

  it("never raises it again: a lower value leaves the thread where it is, and throws nothing", async () => {
    expect(await nicesAfter([15, 10, 0])).toEqual({ nices: [15, 15, 15] });
  });

  it("leaves the main thread, whose id is the process's, alone", () => {
    const before = threadNices().get(String(process.pid));
    setThreadNice(19);
    expect(threadNices().get(String(process.pid))).toBe(before);
  });
});
