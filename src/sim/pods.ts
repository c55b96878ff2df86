// The simulated pods (SPEC.md §8), driven by the latency profile in virtual time:
// - a prefill pod runs batches of queued prompts, FIFO, while their tokens fit the token budget (one
//   prompt always goes); a batch takes the sum of its prompts' prefillMs(prompt tokens) x the pod's
//   prefill time factor / TP speed-up (see batchPrefillMs);
// - a finished prompt joins its decode pod's waiting queue; the decode pod admits waiting requests FIFO
//   at iteration boundaries while their KV (prompt + output tokens, reserved at admission as if vLLM
//   allocated max_tokens at once; no preemption) fits its capacity, then pulls the KV: overhead +
//   prompt tokens x KV bytes per token / the link's bandwidth (node, rack or cross; no contention);
// - a decode pod runs continuous-batching iterations back to back while it has work: every running
//   sequence gains one token per iteration of stepMs(batch, KV tokens held) x its decode time factor;
//   a request prefilled locally on its decode pod (a local pair) has its prompt computed inside an
//   iteration, which then also takes the local prompts' batch prefill time x the pod's prefill time factor;
// - a request whose prompt + output tokens exceed its decode pod's KV capacity could never be admitted:
//   the cluster fails it at dispatch (vLLM refuses a request longer than it can hold) instead of letting
//   it block the pod's FIFO admission for good.
// A request's first token is the end of its first iteration on its decode pod (for a local prefill,
// the iteration that computed its prompt); token k comes k - 1 iterations later.

import type { Clock } from "../clock.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import { tpSpeedup } from "../predictors/profile.js";
import type { Scenario, SimPodSpec } from "./scenario.js";
import type { SimRequest } from "./workload.js";

/**
 * Prefill compute of a batch of prompts at TP 1: the sum of each prompt's batch-1 time, as if they ran
 * one after another. The batch-1 row at the batch's total tokens would charge attention across prompts
 * that a batch does not compute (8 x 1,024 tokens: 232 ms, where the shipped CSV measures 199.8 ms for
 * that batch and the sum is 206.7 ms), so batching would cost throughput. The sum overstates batches of
 * short prompts, whose fixed per-pass cost a real batch shares (8 x 128 tokens: 59.9 ms against 25.3
 * measured), but on `default`'s prompts charging the lower of the two would raise a saturated pod's
 * rate by 0.02 %. With the sum a saturated pod serves 1000 / E[prefillMs(ISL)] prompts/s, the nominal
 * capacity (capacity.ts). The profile loader keeps batch-1 rows only, so batch rows are not interpolated.
 */
export function batchPrefillMs(profile: LatencyProfile, jobs: readonly Job[]): number {
  let ms = 0;
  for (const job of jobs) ms += profile.prefillMs(job.req.inputTokens);
  return ms;
}

/** Where a request runs: a prefill pod index, or -1 when the decode pod prefills locally. */
export interface Placement {
  prefill: number;
  decode: number;
  /** What the policy predicted, when it predicts (headroom). */
  predicted?: { prefillTtftMs: number; decodeTtftMs: number; transferMs: number; ttftMs: number; tpotMs: number };
}

/** One request's life in the cluster, in clock ms. */
export interface Job {
  req: SimRequest;
  prefill: number;
  decode: number;
  dispatchMs: number;
  transferMs: number;
  prefillStartMs?: number;
  prefillDoneMs?: number;
  admittedMs?: number;
  firstTokenMs?: number;
  doneMs?: number;
  /** Set when the cluster refused the request: its ISL + OSL exceed its decode pod's KV capacity. */
  failedMs?: number;
  /** Called at the end of every iteration that gives the request a token (the pod simulator streams them). */
  onToken?: () => void;
}

/** What a pod's metrics endpoint would say now (vLLM's gauges). */
export interface PodGauges {
  waiting: number;
  running: number;
  kvUsage: number;
  kvCapacityTokens: number;
}

export type LinkClass = "node" | "rack" | "cross";

export function linkClass(a: SimPodSpec, b: SimPodSpec): LinkClass {
  return a.node === b.node ? "node" : a.rack === b.rack ? "rack" : "cross";
}

export interface PodRuntime {
  spec: SimPodSpec;
  profile: LatencyProfile;
  speedup: number;
  kvCapacityTokens: number;
}

export class PrefillPod {
  private readonly queue: Job[] = [];
  private head = 0;
  private batch: Job[] = [];
  private batchTokens = 0;
  private batchEndMs = 0;
  /** Compute of the queued prompts, each on its own (ms). */
  private queuedMs = 0;

  constructor(
    private readonly pod: PodRuntime,
    private readonly budget: number,
    private readonly clock: Clock,
    private readonly done: (job: Job) => void,
  ) {}

  enqueue(job: Job): void {
    this.queue.push(job);
    this.queuedMs += this.computeMs(job.req.inputTokens);
    if (this.batch.length === 0) this.start();
  }

  /** Work ahead of a new prompt: the rest of the running batch and the queued prompts (an omniscient view). */
  workAheadMs(): number {
    return Math.max(0, this.batchEndMs - this.clock.nowMs()) + this.queuedMs;
  }

  private computeMs(tokens: number): number {
    return (this.pod.profile.prefillMs(tokens) * this.pod.spec.prefillTimeFactor) / this.pod.speedup;
  }

  gauges(): PodGauges {
    return {
      waiting: this.queue.length - this.head,
      running: this.batch.length,
      kvUsage: Math.min(1, this.batchTokens / this.pod.kvCapacityTokens),
      kvCapacityTokens: this.pod.kvCapacityTokens,
    };
  }

  private start(): void {
    if (this.head === this.queue.length) return;
    const now = this.clock.nowMs();
    let tokens = 0;
    const batch: Job[] = [];
    while (this.head < this.queue.length) {
      const job = this.queue[this.head];
      if (batch.length > 0 && tokens + job.req.inputTokens > this.budget) break;
      this.head++;
      tokens += job.req.inputTokens;
      this.queuedMs -= this.computeMs(job.req.inputTokens);
      job.prefillStartMs = now;
      batch.push(job);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.batch = batch;
    this.batchTokens = tokens;
    if (this.head === this.queue.length) this.queuedMs = 0;
    const ms = (batchPrefillMs(this.pod.profile, batch) * this.pod.spec.prefillTimeFactor) / this.pod.speedup;
    this.batchEndMs = now + ms;
    this.clock.schedule(ms, () => this.finish());
  }

  private finish(): void {
    const now = this.clock.nowMs();
    const batch = this.batch;
    this.batch = [];
    this.batchTokens = 0;
    for (const job of batch) {
      job.prefillDoneMs = now;
      this.done(job);
    }
    this.start();
  }
}

export class DecodePod {
  private readonly waiting: Job[] = [];
  private head = 0;
  private transferring = 0;
  private ready: Job[] = [];
  private reservedKv = 0;
  /** Sequences in the decode batch, their prompt tokens and tokens generated so far. */
  private running = 0;
  private promptTokens = 0;
  private generated = 0;
  private localInProgress = 0;
  /** Iterations completed; a sequence finishing at the end of iteration k is listed under k. */
  private step = 0;
  private readonly finishing = new Map<number, Job[]>();
  private busy = false;
  /** Requests in the batch that listen for their tokens. */
  private readonly listening = new Set<Job>();

  constructor(
    private readonly pod: PodRuntime,
    private readonly clock: Clock,
    private readonly completed: (job: Job) => void,
  ) {}

  /** Whether the request's KV (prompt + output tokens) fits this pod at all. */
  canHold(req: SimRequest): boolean {
    return req.inputTokens + req.outputTokens <= this.pod.kvCapacityTokens;
  }

  /** A request whose prompt is ready (remote) or that will prefill here (local); it must fit (canHold). */
  enqueue(job: Job): void {
    // Queued, it would block FIFO admission for good.
    if (!this.canHold(job.req)) {
      const need = job.req.inputTokens + job.req.outputTokens;
      throw new RangeError(`${this.pod.spec.name}: request ${job.req.id} needs ${need} KV tokens, more than the pod's ${this.pod.kvCapacityTokens}`);
    }
    this.waiting.push(job);
    if (!this.busy) this.iterate();
  }

  gauges(): PodGauges {
    return {
      // vLLM counts requests still receiving their KV as waiting.
      waiting: this.waiting.length - this.head + this.transferring + this.ready.length,
      running: this.running + this.localInProgress,
      kvUsage: Math.min(1, this.reservedKv / this.pod.kvCapacityTokens),
      kvCapacityTokens: this.pod.kvCapacityTokens,
    };
  }

  /** Admits waiting requests FIFO while their KV fits; returns the admitted local prefills. */
  private admit(): Job[] {
    const now = this.clock.nowMs();
    const local: Job[] = [];
    while (this.head < this.waiting.length) {
      const job = this.waiting[this.head];
      const need = job.req.inputTokens + job.req.outputTokens;
      if (this.reservedKv + need > this.pod.kvCapacityTokens) break;
      this.head++;
      this.reservedKv += need;
      job.admittedMs = now;
      if (job.prefill < 0) local.push(job);
      else {
        this.transferring++;
        this.clock.schedule(job.transferMs, () => {
          this.transferring--;
          this.ready.push(job);
          if (!this.busy) this.iterate();
        });
      }
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    return local;
  }

  private iterate(): void {
    const local = this.admit();
    const joiners = this.ready;
    this.ready = [];
    for (const job of joiners) if (job.onToken !== undefined) this.listening.add(job);
    for (const job of local) if (job.onToken !== undefined) this.listening.add(job);
    for (const job of joiners) {
      this.running++;
      this.promptTokens += job.req.inputTokens;
      this.finishAt(this.step + job.req.outputTokens - 1, job);
    }
    const batch = this.running;
    if (batch === 0 && local.length === 0) {
      this.busy = false;
      return;
    }
    let ms = 0;
    if (batch > 0) ms += this.pod.profile.stepMs(batch, this.promptTokens + this.generated) * this.pod.spec.decodeTimeFactor;
    if (local.length > 0) {
      ms += batchPrefillMs(this.pod.profile, local) * this.pod.spec.prefillTimeFactor;
      const now = this.clock.nowMs();
      for (const job of local) job.prefillStartMs = now;
    }
    this.localInProgress = local.length;
    this.busy = true;
    this.clock.schedule(ms / this.pod.speedup, () => this.endIteration(joiners, local, batch));
  }

  private endIteration(joiners: Job[], local: Job[], batch: number): void {
    const now = this.clock.nowMs();
    for (const job of joiners) job.firstTokenMs = now;
    for (const job of local) job.firstTokenMs = now;
    for (const job of this.listening) job.onToken!();
    this.generated += batch;
    const finished = this.finishing.get(this.step);
    if (finished !== undefined) {
      this.finishing.delete(this.step);
      for (const job of finished) {
        this.running--;
        this.promptTokens -= job.req.inputTokens;
        this.generated -= job.req.outputTokens;
        this.release(job, now);
      }
    }
    this.localInProgress = 0;
    for (const job of local) {
      job.prefillDoneMs = now;
      if (job.req.outputTokens === 1) {
        this.release(job, now);
        continue;
      }
      this.running++;
      this.promptTokens += job.req.inputTokens;
      this.generated += 1;
      this.finishAt(this.step + job.req.outputTokens - 1, job);
    }
    this.step++;
    this.iterate();
  }

  private release(job: Job, now: number): void {
    this.listening.delete(job);
    this.reservedKv -= job.req.inputTokens + job.req.outputTokens;
    job.doneMs = now;
    this.completed(job);
  }

  private finishAt(step: number, job: Job): void {
    const list = this.finishing.get(step);
    if (list === undefined) this.finishing.set(step, [job]);
    else list.push(job);
  }
}

export interface SimClusterOptions {
  scenario: Scenario;
  /** Profiles by name; pods name theirs (the scenario's default otherwise). */
  profiles: ReadonlyMap<string, LatencyProfile>;
  clock: Clock;
  /** Called when a request's last token is out. */
  onComplete: (job: Job) => void;
}

export class SimCluster {
  readonly pods: readonly SimPodSpec[];
  private readonly prefill: (PrefillPod | null)[];
  private readonly decode: (DecodePod | null)[];
  private readonly runtimes: PodRuntime[];
  private inFlight = 0;

  constructor(private readonly options: SimClusterOptions) {
    const { scenario, profiles, clock } = options;
    const c = scenario.cluster;
    this.pods = c.pods;
    this.runtimes = c.pods.map((spec) => {
      const profile = profiles.get(spec.profile);
      if (profile === undefined) throw new RangeError(`pod ${spec.name} names unknown profile ${spec.profile}`);
      return {
        spec,
        profile,
        speedup: tpSpeedup(spec.tp, c.tpEfficiency),
        kvCapacityTokens: spec.kvCapacityTokens ?? profile.kvCapacityTokens(spec.tp, c.gpuMemoryUtilization),
      };
    });
    const complete = (job: Job) => {
      this.inFlight--;
      options.onComplete(job);
    };
    this.decode = this.runtimes.map((rt) => (rt.spec.role === "decode" ? new DecodePod(rt, clock, complete) : null));
    this.prefill = this.runtimes.map((rt) =>
      rt.spec.role === "prefill" ? new PrefillPod(rt, c.prefillTokenBudget, clock, (job) => this.decode[job.decode]!.enqueue(job)) : null,
    );
  }

  /** Requests dispatched and not yet complete. */
  get pending(): number {
    return this.inFlight;
  }

  /** KV transfer time between two pods for a prompt of `tokens` tokens. */
  transferMs(from: number, to: number, tokens: number): number {
    const c = this.options.scenario.cluster;
    const a = this.pods[from];
    const b = this.pods[to];
    const bytes = tokens * this.runtimes[from].profile.hardware.kvBytesPerToken;
    return c.transferOverheadMs + bytes / (c.bandwidthGBps[linkClass(a, b)] * 1e6);
  }

  /**
   * Sends a request to its pods now. The placement must name a prefill pod (or -1) and a decode pod.
   * A request the decode pod cannot hold fails at once (the job's failedMs) and costs no compute.
   */
  dispatch(req: SimRequest, placement: Placement): Job {
    const { prefill, decode } = placement;
    const decodePod = this.decode[decode];
    if (decodePod == null) throw new RangeError(`pod ${decode} is not a decode pod`);
    if (prefill >= 0 && this.prefill[prefill] == null) throw new RangeError(`pod ${prefill} is not a prefill pod`);
    const now = this.options.clock.nowMs();
    const job: Job = {
      req,
      prefill,
      decode,
      dispatchMs: now,
      transferMs: prefill < 0 ? 0 : this.transferMs(prefill, decode, req.inputTokens),
    };
    if (!decodePod.canHold(req)) {
      job.failedMs = now;
      return job;
    }
    this.inFlight++;
    if (prefill < 0) this.decode[decode]!.enqueue(job);
    else this.prefill[prefill]!.enqueue(job);
    return job;
  }

  gauges(pod: number): PodGauges {
    return (this.prefill[pod] ?? this.decode[pod])!.gauges();
  }

  /** A prefill pod's true work ahead of a new prompt (ms); for the omniscient reference policy only. */
  workAheadMs(pod: number): number {
    return this.prefill[pod]!.workAheadMs();
  }
}
