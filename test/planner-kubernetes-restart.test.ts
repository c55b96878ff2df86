// A planner with the kubernetes actuator starts from what the pool runs (each workload's Scale), not
// from one `both` worker: after a restart its first decision steps up or down from the real replicas,
// it waits while it cannot read them, and it follows changes made outside it. A loopback server answers
// the scale API. A decision that replaces a failed one still sets what the failed one changed.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubernetesActuator } from "../src/planner/kubernetes-actuator.js";
import { FakeScaleApi } from "./fixtures/planner-kube-scale.js";
import { AS_PROFILED_TPOT_MS, feed, flush, pool, setup } from "./fixtures/planner-pools.js";
import { until } from "./fixtures/wait.js";

const NS = "llm";
const layout = (prefill: number, decode: number, both: number) => ({ prefill, decode, both });
const desiredOf = (s: { desired: { prefill: number; decode: number; both: number } }) => layout(s.desired.prefill, s.desired.decode, s.desired.both);

let api: FakeScaleApi;
let actuator: KubernetesActuator;

beforeEach(async () => {
  api = new FakeScaleApi();
  await api.listen();
  // What an earlier headroom process (or the operator) left running: 3 prefill, 2 decode, 1 both.
  api.set("deployments", NS, "m-prefill", 3);
  api.set("deployments", NS, "m-decode", 2);
  api.set("deployments", NS, "m-both", 1);
  actuator = new KubernetesActuator(api.kubeConfig(), {
    namespace: NS,
    workloads: {
      m: {
        prefill: { kind: "Deployment", name: "m-prefill" },
        decode: { kind: "Deployment", name: "m-decode" },
        both: { kind: "Deployment", name: "m-both" },
      },
    },
  });
});

afterEach(async () => {
  await api.close();
});

const medium = pool("medium", { name: "m", maxGpus: 8, planner: { loadPredictor: "constant", burstProtection: false } });
const replicas = () => [api.replicas("deployments", NS, "m-prefill"), api.replicas("deployments", NS, "m-decode"), api.replicas("deployments", NS, "m-both")];

describe("a planner that starts on a running pool", () => {
  it("starts from the replicas it reads, and steps up from them under violations", async () => {
    const t = setup([medium], { actuator });
    await until(() => t.state("m").running.source === "read", "the first read");
    let s = t.state("m");
    expect(desiredOf(s)).toEqual(layout(3, 2, 1));
    expect(s.applied).toEqual({ prefill: 3, decode: 2, both: 1, gpus: 6 });
    expect(await t.registry.getSingleMetricAsString("headroom_planner_current_workers")).toContain('headroom_planner_current_workers{pool="m",role="decode"} 2');
    // 30 req/s with 30 % of TTFTs missed: one more prefill worker. Before, the planner believed it ran
    // one both worker, and this "step up" set decode 2 -> 0 and prefill 3 -> 2.
    feed(t, { m: { ratePerS: 30, missShare: 0.3, miss: { ttftMs: 900 } } }, 10);
    await until(() => t.state("m").apply.status === "applied", "the decision applied");
    s = t.state("m");
    expect(s.decisions.map((d) => ({ from: d.from, to: d.to, reason: d.reason }))).toEqual([{ from: layout(3, 2, 1), to: layout(4, 2, 1), reason: "violations" }]);
    expect(api.puts()).toEqual([`deployments/${NS}/m-prefill=4`]);
    expect(replicas()).toEqual([4, 2, 1]);
    t.planners.close();
  });

  it("scales a pool it finds too large down one worker at a time, after the cooldown", async () => {
    const t = setup([medium], { actuator });
    await until(() => t.state("m").running.source === "read", "the first read");
    const seen: number[][] = [];
    for (let i = 0; i < 5; i++) {
      feed(t, { m: { ratePerS: 1 } }, 10);
      await until(() => t.state("m").apply.status !== "applying", "the decision applied");
      await flush();
      seen.push(replicas() as number[]);
    }
    // Cooldown 20 s from the read: held at 10 s, then one worker every other interval, each time from
    // the role furthest above the target (one both worker).
    expect(seen).toEqual([
      [3, 2, 1],
      [2, 2, 1],
      [2, 2, 1],
      [1, 2, 1],
      [1, 2, 1],
    ]);
    expect(t.state("m").decisions.every((d) => d.reason === "scale_down")).toBe(true);
    t.planners.close();
  });

  it("does not size while it cannot read what runs, and starts once it can", async () => {
    api.failures.push({ method: "GET", status: 503 }, { method: "GET", status: 503 }, { method: "GET", status: 503 });
    const t = setup([medium], { actuator });
    await until(() => t.state("m").running.readError !== null, "the failed read");
    feed(t, { m: { ratePerS: 30, missShare: 0.3, miss: { ttftMs: 900 } } }, 10);
    let s = t.state("m");
    expect(s.running.source).toBe("unknown");
    expect(s.lastSkip).toMatchObject({ cause: "layout_unknown" });
    expect(s.lastSkip!.message).toContain("HTTP 503");
    expect(s.decisions).toEqual([]);
    // The interval read again, and this time the API answered.
    await until(() => t.state("m").running.source === "read", "the read after the interval");
    feed(t, { m: { ratePerS: 30, missShare: 0.3, miss: { ttftMs: 900 } } }, 10);
    await until(() => t.state("m").apply.status === "applied", "the decision applied");
    s = t.state("m");
    expect(s.decisions[0]).toMatchObject({ from: layout(3, 2, 1), to: layout(4, 2, 1) });
    expect(api.puts()).toEqual([`deployments/${NS}/m-prefill=4`]);
    expect(t.logger.lines.filter((l) => l.message.startsWith("planner cannot read what the pool runs"))).toHaveLength(1);
    t.planners.close();
  });

  it("follows replicas changed outside it, and scales down from them one step at a time", async () => {
    const t = setup([medium], { actuator });
    await until(() => t.state("m").running.source === "read", "the first read");
    // 30 req/s holds 2 prefill workers; the decode workers beyond need go one at a time.
    feed(t, { m: { ratePerS: 30, tpotMs: AS_PROFILED_TPOT_MS } }, 30);
    await until(() => t.state("m").apply.status !== "applying", "the decisions applied");
    expect(replicas()).toEqual([3, 1, 1]);
    // An operator adds four decode workers. The next decision (prefill 3 -> 2) leaves them alone.
    api.set("deployments", NS, "m-decode", 5);
    feed(t, { m: { ratePerS: 30, tpotMs: AS_PROFILED_TPOT_MS } }, 10);
    await until(() => t.state("m").apply.status === "applied", "the decision applied");
    expect(replicas()).toEqual([2, 5, 1]);
    // The next interval reads what runs and takes it in.
    feed(t, { m: { ratePerS: 30, tpotMs: AS_PROFILED_TPOT_MS } }, 10);
    await until(() => desiredOf(t.state("m")).decode === 5, "the change taken in");
    expect(t.logger.lines.some((l) => l.message === "planner found the pool's workers changed outside it" && l.fields?.runs === "2P/5D/1B")).toBe(true);
    const before = api.puts().length;
    for (let i = 0; i < 4; i++) {
      feed(t, { m: { ratePerS: 30, tpotMs: AS_PROFILED_TPOT_MS } }, 10);
      await until(() => t.state("m").apply.status !== "applying", "the decision applied");
      await flush();
    }
    // One worker a step, and not within the cooldown after the change.
    expect(api.puts().slice(before)).toEqual([`deployments/${NS}/m-decode=4`, `deployments/${NS}/m-decode=3`]);
    t.planners.close();
  });
});

describe("a decision that replaces one that failed", () => {
  it("sets the failed one's roles too: every role that differs from what runs", async () => {
    api.set("deployments", NS, "m-prefill", 1);
    api.set("deployments", NS, "m-decode", 1);
    // One attempt per decision, and step-ups at every interval.
    const t = setup([medium], { actuator, apply: { attempts: 1 }, tuning: { startupDelayMs: 0 } });
    await until(() => t.state("m").running.source === "read", "the first read");
    // TTFTs missed: prefill 1 -> 2, whose PUT fails.
    api.failures.push({ method: "PUT", status: 500 });
    feed(t, { m: { ratePerS: 10, missShare: 0.3, miss: { ttftMs: 900 } } }, 10);
    await until(() => t.state("m").apply.status === "failed", "the first decision failed");
    expect(replicas()).toEqual([1, 1, 1]);
    // TPOTs missed: decode 1 -> 2, from the planner's 2P/1D/1B.
    feed(t, { m: { ratePerS: 10, missShare: 0.3, miss: { tpotMs: 90 } } }, 10);
    await until(() => t.state("m").apply.status === "applied", "the second decision applied");
    const s = t.state("m");
    expect(s.decisions.map((d) => d.to)).toEqual([layout(2, 2, 1), layout(2, 1, 1)]);
    // Before, the second decision started from the failed one's layout and set decode only, and the
    // planner recorded 2P/2D/1B as running over 1P/2D/1B.
    expect(replicas()).toEqual([2, 2, 1]);
    expect(s.applied).toEqual({ prefill: 2, decode: 2, both: 1, gpus: 5 });
    expect(await t.registry.getSingleMetricAsString("headroom_planner_current_workers")).toContain('headroom_planner_current_workers{pool="m",role="prefill"} 2');
    t.planners.close();
  });
});
