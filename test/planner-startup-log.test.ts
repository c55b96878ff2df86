// Each planner logs one block at start-up (SPEC.md §6): level and priority, description, targets,
// expected workload, TP, GPU memory utilization, scaling behaviour, why this TP.

import { describe, expect, it } from "vitest";
import { pool, setup } from "./fixtures/planner-pools.js";

describe("start-up block", () => {
  it("is logged once per planner with the default pools' settings and the profile's numbers", () => {
    const t = setup([pool("high", { planner: { adjustmentIntervalMs: 30_000 } }), pool("medium"), pool("low")], {
      cluster: { gpuBudget: 8, gpuHourPrice: 2.5 },
    });
    const blocks = t.logger.lines.filter((l) => l.message.startsWith("SLA planner initialized"));
    expect(blocks).toHaveLength(3);
    const high = blocks[0]!;
    expect(high.level).toBe("info");
    expect(high.fields?.block).toEqual([
      "SLA planner initialized for pool high:",
      "  SLO level: HIGH (priority 1)",
      "  Description: Premium service with strict latency requirements",
      "  SLO targets: TTFT=300 ms, ITL=30 ms at p95, 5% violations allowed",
      "  Expected workload: ISL=2000, OSL=150",
      "  Tensor parallelism: TP=2 for prefill, decode and both workers, at most 4 GPUs",
      "  GPU memory utilization: 0.95",
      "  Scaling behavior: aggressive: scale up at 50% utilization or over 5% violations, buffer 0.80, proactive (arima load predictor), burst protection, adjust every 30 s, scale down one step after 60 s",
      // 51.45 ms / 1.7 and the batch-453 numbers of planner-sizing.test.ts; at TP=1 the 30 ms ITL
      // allows (30 - c0) / (c1 + 2075 c2) = 238 sequences, 238 / 29.95 ms = 7,946 tok/s.
      "  TP configuration: TP=2 prefills 2,000 tokens in 30.3 ms (TP=1: 51.5 ms) of the 300 ms TTFT target and decodes up to batch 453 within the 30 ms ITL (15,117 output tokens/s per worker, 7,559 per GPU; TP=1: 7,946 per GPU); 4 GPUs allow 2 workers of TP=2",
      "  Actuator: advisory",
    ]);
    expect(high.message).toBe((high.fields!.block as string[]).join("\n"));
    expect(high.fields).toMatchObject({ pool: "high", sloLevel: "high", sloPriority: 1, tp: 2, gpuMemoryUtilization: 0.95, expected: { isl: 2000, osl: 150 } });

    // The low pool is cost-optimised: its cooldown is half of the default two intervals.
    const low = blocks[2]!.fields!.block as string[];
    expect(low[1]).toBe("  SLO level: LOW (priority 3)");
    expect(low[7]).toBe(
      "  Scaling behavior: conservative: scale up at 90% utilization or over 20% violations, buffer 0.95, reactive (observed load; constant predictor for reference), cost optimisation (fewer workers, earlier scale-down), adjust every 10 s, scale down one step after 10 s",
    );
    expect(low[8]).toMatch(/^ {2}TP configuration: TP=1 prefills 2,000 tokens in 51\.5 ms of the 2,000 ms TTFT target and decodes up to batch 209 \(KV-bound\)/);
    const medium = blocks[1]!.fields!.block as string[];
    expect(medium[7]).toMatch(/^ {2}Scaling behavior: balanced: scale up at 70% utilization/);
    t.planners.close();
  });
});
