// The kubernetes actuator against a loopback server answering the scale API: replicas of the pool's
// prefill, decode and both workloads (Deployments and StatefulSets), read, lower before raise, only the
// roles a decision changes, a 409 re-read, and 404 / 500 answers retried by the applier and reported.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { MemoryLogger } from "../src/log.js";
import { DecisionApplier } from "../src/planner/actuators.js";
import { KubernetesActuator } from "../src/planner/kubernetes-actuator.js";
import type { ScaleRequest } from "../src/planner/types.js";
import { FakeScaleApi } from "./fixtures/planner-kube-scale.js";
import { until } from "./fixtures/wait.js";

const NS = "llm";

function request(prefill: number, decode: number, both: number): ScaleRequest {
  return { pool: "high", prefill, decode, both, tp: 2, gpus: 2 * (prefill + decode + both), reason: "sizing", details: [], atMs: 0 };
}

let api: FakeScaleApi;
let actuator: KubernetesActuator;

beforeEach(async () => {
  api = new FakeScaleApi();
  await api.listen();
  api.set("deployments", NS, "high-prefill", 0);
  api.set("statefulsets", NS, "high-decode", 3);
  api.set("deployments", NS, "high-both", 1);
  actuator = new KubernetesActuator(api.kubeConfig(), {
    namespace: NS,
    workloads: {
      high: {
        prefill: { kind: "Deployment", name: "high-prefill" },
        decode: { kind: "StatefulSet", name: "high-decode" },
        both: { kind: "Deployment", name: "high-both" },
      },
      low: { both: { kind: "Deployment", name: "low-both", namespace: "other" } },
    },
  });
});

afterEach(async () => {
  await api.close();
});

describe("kubernetes actuator", () => {
  it("replaces the scale of workloads whose replicas differ, lowering before raising", async () => {
    await actuator.apply(request(2, 1, 1));
    expect(api.replicas("deployments", NS, "high-prefill")).toBe(2);
    expect(api.replicas("statefulsets", NS, "high-decode")).toBe(1);
    expect(api.replicas("deployments", NS, "high-both")).toBe(1);
    expect(api.puts()).toEqual([`statefulsets/${NS}/high-decode=1`, `deployments/${NS}/high-prefill=2`]);
    // Nothing to change: reads only.
    const before = api.requests.length;
    await actuator.apply(request(2, 1, 1));
    expect(api.requests.slice(before).every((r) => r.method === "GET")).toBe(true);
  });

  it("reads what a pool runs: each role's replicas, 0 without a workload, nothing for a pool without any", async () => {
    expect(await actuator.read("high")).toEqual({ prefill: 0, decode: 3, both: 1 });
    api.set("deployments", "other", "low-both", 2);
    expect(await actuator.read("low")).toEqual({ prefill: 0, decode: 0, both: 2 });
    expect(await actuator.read("medium")).toBeUndefined();
    api.workloads.delete(`statefulsets/${NS}/high-decode`);
    await expect(actuator.read("high")).rejects.toThrow(`cannot read the scale of StatefulSet ${NS}/high-decode: HTTP 404`);
  });

  it("sets only the roles a decision changes", async () => {
    // The planner went from 0P/2D/1B to 1P/2D/1B; someone has since scaled decode to 3: left alone.
    await actuator.apply({ ...request(1, 2, 1), from: { prefill: 0, decode: 2, both: 1 } });
    expect(api.puts()).toEqual([`deployments/${NS}/high-prefill=1`]);
    expect(api.replicas("statefulsets", NS, "high-decode")).toBe(3);
  });

  it("without a namespace, uses the kubeconfig context's (in a pod, the pod's own), not `default`", async () => {
    const kc = api.kubeConfig();
    kc.loadFromOptions({ clusters: kc.clusters, users: kc.users, contexts: [{ ...kc.contexts[0]!, namespace: NS }], currentContext: kc.currentContext });
    const placed = new KubernetesActuator(kc, { workloads: { high: { both: { kind: "Deployment", name: "high-both" } } } });
    expect(await placed.read("high")).toEqual({ prefill: 0, decode: 0, both: 1 });
  });

  it("re-reads and replaces again after a 409 conflict", async () => {
    api.failures.push({ method: "PUT", status: 409 });
    await actuator.apply(request(1, 3, 1));
    expect(api.replicas("deployments", NS, "high-prefill")).toBe(1);
    expect(api.puts()).toEqual([`deployments/${NS}/high-prefill=1`, `deployments/${NS}/high-prefill=1`]);
  });

  it("fails with the workload and status when the scale cannot be read", async () => {
    api.workloads.delete(`statefulsets/${NS}/high-decode`);
    await expect(actuator.apply(request(0, 1, 1))).rejects.toThrow(`cannot read the scale of StatefulSet ${NS}/high-decode: HTTP 404`);
  });

  it("fails when a role with workers has no workload configured", async () => {
    await expect(actuator.apply({ ...request(1, 0, 1), pool: "low" })).rejects.toThrow("pool low has no kubernetes workload for role prefill");
  });

  it("through the applier: a 500 and a 404 are retried with backoff, then applied", async () => {
    const clock = new ManualClock();
    const errors: string[] = [];
    const applier = new DecisionApplier({
      pool: "high",
      actuator,
      clock,
      logger: new MemoryLogger(),
      attempts: 4,
      initialBackoffMs: 1000,
      onFailure: (e) => errors.push(e),
    });
    api.failures.push({ method: "PUT", status: 500 });
    api.workloads.delete(`deployments/${NS}/high-prefill`);
    applier.submit(request(1, 3, 1));
    await until(() => errors.length === 1, "the first failure");
    expect(errors[0]).toBe(`cannot read the scale of Deployment ${NS}/high-prefill: HTTP 404`);
    api.set("deployments", NS, "high-prefill", 0);
    clock.advance(1000);
    await until(() => errors.length === 2, "the second failure");
    expect(errors[1]).toBe(`cannot replace the scale of Deployment ${NS}/high-prefill: HTTP 500`);
    expect(applier.state()).toMatchObject({ status: "applying", attempts: 2 });
    clock.advance(2000);
    await until(() => applier.state().status === "applied", "the decision applied");
    expect(applier.state()).toMatchObject({ attempts: 3, failures: 2 });
    expect(api.replicas("deployments", NS, "high-prefill")).toBe(1);
    applier.close();
  });

  it("through the applier: a workload that stays missing is reported failed", async () => {
    const clock = new ManualClock();
    const logger = new MemoryLogger();
    const applier = new DecisionApplier({ pool: "high", actuator, clock, logger, attempts: 2, initialBackoffMs: 10 });
    api.workloads.delete(`deployments/${NS}/high-both`);
    applier.submit(request(0, 3, 1));
    await until(() => applier.state().failures === 1, "the first failure");
    clock.advance(10);
    await until(() => applier.state().status === "failed", "the failure reported");
    expect(applier.state().lastError).toBe(`cannot read the scale of Deployment ${NS}/high-both: HTTP 404`);
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(1);
    expect(logger.lines.filter((l) => l.level === "error")).toHaveLength(1);
  });
});
