// The `profile` predictor, headroom's embedded default: per pod, from its latency profile, TP and live
// state, the prefill compute and queue, the wait until a decode pod can admit a request (KV included),
// the time per output token, and the marginal effect of one more request (SPEC.md §4).

import type { LatencyProfile } from "./latency-profile.js";
import type { PodFeatures, PoolPredictions, Predictor, Quantity } from "./types.js";

/** Decode steps from a request's admission to its first token: half a step to the boundary, then one. */
export const FIRST_TOKEN_STEPS = 1.5;

/** Predictions are bounded so a pod that can never admit a request still has a finite (huge) wait. */
export const MAX_PREDICTION_MS = 10_000_000;

export interface ProfilePredictorOptions {
  /** Profiles by name; every pod's `profile` must be here. */
  profiles: ReadonlyMap<string, LatencyProfile>;
  /** A TP=t worker runs t x tpEfficiency times faster than one GPU (t > 1). */
  tpEfficiency: number;
}

/** How much faster than one GPU a worker of `tp` GPUs runs. */
export function tpSpeedup(tp: number, tpEfficiency: number): number {
  return tp > 1 ? tp * tpEfficiency : 1;
}

export class ProfilePredictor implements Predictor {
  readonly kind = "profile" as const;

  constructor(private readonly options: ProfilePredictorOptions) {}

  profileOf(pod: PodFeatures): LatencyProfile {
    const profile = this.options.profiles.get(pod.profile);
    if (profile === undefined) throw new RangeError(`pod ${pod.address} names unknown profile ${pod.profile}`);
    return profile;
  }

  speedup(pod: PodFeatures): number {
    return tpSpeedup(pod.tp, this.options.tpEfficiency);
  }

  fill(quantity: Quantity, pods: readonly PodFeatures[], out: PoolPredictions): void {
    for (let i = 0; i < pods.length; i++) {
      if (quantity === "prefill-ttft") this.fillPrefill(pods[i], i, out);
      else if (quantity === "decode-ttft") this.fillDecodeWait(pods[i], i, out);
      else this.fillTpot(pods[i], i, out);
    }
  }

  /** Prefill compute of `tokens` uncached tokens on this pod. */
  prefillMs(pod: PodFeatures, tokens: number): number {
    return bound(this.profileOf(pod).prefillMs(tokens) / this.speedup(pod));
  }

  /**
   * Work ahead of a new prompt on a prefill pod: our in-flight prompts prefilled here for other pods
   * (local prefills are its decode queue, as the kernel adds them between refreshes), the scraped
   * queue, half a running batch.
   */
  prefillQueueMs(pod: PodFeatures): number {
    const typical = this.prefillMs(pod, pod.meanIsl);
    const remote = Math.max(0, pod.prefillMsInFlight - pod.localPrefillMsInFlight);
    return bound(remote + pod.waiting * typical + (pod.running > 0 ? typical / 2 : 0));
  }

  private fillPrefill(pod: PodFeatures, i: number, out: PoolPredictions): void {
    const n = out.pods;
    const grid = out.gridTokens;
    for (let g = 0; g < grid.length; g++) {
      const compute = this.prefillMs(pod, grid[g]);
      out.prefillMs[g * n + i] = compute;
      out.prefillLoadMs[g * n + i] = compute;
      // A decode pod prefilling locally spends the same compute; its cost to the requests it is decoding
      // shows in their step times, and the pick's own wait comes from the decode-ttft prediction.
      out.localPrefillMs[g * n + i] = compute;
    }
    out.prefillQueueMs[i] = pod.role === "decode" ? 0 : this.prefillQueueMs(pod);
  }

  /** Sequences a new request would decode with: running, admitted-soon waiting and our unreflected picks. */
  batchAhead(pod: PodFeatures): number {
    return pod.running + pod.waiting + pod.decodeRequestsInFlight;
  }

  /** KV tokens held or claimed on a decode pod (scraped use plus our unreflected picks). */
  kvClaimed(pod: PodFeatures): number {
    return pod.kvTokensUsed + pod.decodeTokensInFlight + pod.waiting * pod.meanIsl;
  }

  /** One decode step with one more sequence of `isl` prompt tokens, half way through a typical output. */
  stepMs(pod: PodFeatures, isl: number): number {
    const profile = this.profileOf(pod);
    const kv = this.kvClaimed(pod) + isl + pod.meanOsl / 2;
    return bound(profile.stepMs(this.batchAhead(pod) + 1, kv) / this.speedup(pod));
  }

  /**
   * Wait until a decode pod has produced a request's first token: half a step to the next iteration
   * boundary and the request's first step when its prompt fits in KV; otherwise also the time to free
   * the missing tokens, taking the pod to free a whole KV cache's worth of tokens per typical sequence
   * lifetime (meanOsl steps). A request larger than the cache never fits.
   */
  decodeWaitMs(pod: PodFeatures, isl: number, extraRequests = 0): number {
    const step = this.stepMs(pod, isl);
    if (beyondKv(pod, isl)) return MAX_PREDICTION_MS;
    const sequences = this.batchAhead(pod) + extraRequests;
    // With no sequence on the pod, KV a scrape still shows in use is about to be freed.
    const claimed = sequences > 0 ? this.kvClaimed(pod) + extraRequests * (pod.meanIsl + pod.meanOsl / 2) : 0;
    const deficit = claimed + isl - pod.kvCapacityTokens;
    if (deficit <= 0) return FIRST_TOKEN_STEPS * step;
    return bound(FIRST_TOKEN_STEPS * step + (deficit / pod.kvCapacityTokens) * Math.max(pod.meanOsl, 1) * step);
  }

  private fillDecodeWait(pod: PodFeatures, i: number, out: PoolPredictions): void {
    const n = out.pods;
    const grid = out.gridTokens;
    for (let g = 0; g < grid.length; g++) out.decodeWaitMs[g * n + i] = this.decodeWaitMs(pod, grid[g]);
    // Local prefills still ahead on the pod: a pick adds its compute here between refreshes, as the
    // kernel does, so the refresh counts it here too.
    out.decodeQueueMs[i] = pod.role === "prefill" ? 0 : bound(pod.localPrefillMsInFlight);
    // One more typical request claims KV that later requests may have to wait for.
    const now = this.decodeWaitMs(pod, pod.meanIsl);
    out.waitPerRequestMs[i] = Math.max(0, this.decodeWaitMs(pod, pod.meanIsl, 1) - now);
  }

  private fillTpot(pod: PodFeatures, i: number, out: PoolPredictions): void {
    const n = out.pods;
    const grid = out.gridTokens;
    for (let g = 0; g < grid.length; g++) out.tpotMs[g * n + i] = this.stepMs(pod, grid[g]);
    out.tpotLoadMs[i] = 0;
    const model = this.profileOf(pod).decode;
    const speedup = this.speedup(pod);
    out.tpotPerRequestMs[i] = model.perSequenceMs / speedup;
    out.tpotPerTokenMs[i] = model.perKvTokenMs / speedup;
  }
}

/** Whether a prompt of `isl` tokens can never fit the pod's KV cache (its decode wait is then saturated). */
export function beyondKv(pod: Pick<PodFeatures, "kvCapacityTokens">, isl: number): boolean {
  return isl > pod.kvCapacityTokens;
}

function bound(ms: number): number {
  return ms > MAX_PREDICTION_MS ? MAX_PREDICTION_MS : ms >= 0 ? ms : 0;
}
