// The vocabulary of pods and their live state (SPEC.md §5), shared by discovery, scraping, the
// registry, in-flight load and the predictors.

export type PodRole = "prefill" | "decode" | "both";
export const POD_ROLES: readonly PodRole[] = ["prefill", "decode", "both"];

/** Where a pod came from; when sources disagree about an address, the later one here wins. */
export type PodSource = "static" | "kubernetes" | "push";
export const POD_SOURCES: readonly PodSource[] = ["static", "kubernetes", "push"];

/** What a source says about one pod. Optional fields left out mean "no opinion". */
export interface PodSpec {
  /** host:port of the inference server; the pod's identity. */
  address: string;
  pool: string;
  role: PodRole;
  node?: string;
  rack?: string;
  tp?: number;
  /** Name of a latency profile; absent: the configured default. */
  profile?: string;
  /** Prometheus endpoint of the pod; absent: the pod is unscraped. */
  metricsUrl?: string;
  draining?: boolean;
}

/** Cumulative histogram as scraped: upper bounds in seconds (ascending, last +Inf) and counts. */
export interface ScrapedHistogram {
  le: number[];
  counts: number[];
  sum: number;
  count: number;
}

/** One successful scrape of a vLLM pod, already validated (finite, non-negative, fractions in [0, 1]). */
export interface PodMetrics {
  /** Clock time the scrape was started. */
  scrapedAtMs: number;
  waiting: number;
  running: number;
  /** KV cache usage, fraction in [0, 1]. */
  kvUsage: number;
  /** num_gpu_blocks x block_size from vllm:cache_config_info, when the pod reports it. */
  kvCapacityTokens?: number;
  /** vllm:time_to_first_token_seconds, when present. */
  ttft?: ScrapedHistogram;
  /**
   * vllm:request_time_per_output_token_seconds (per request) when present, else the per-token
   * vllm:time_per_output_token_seconds or vllm:inter_token_latency_seconds (vllm-metrics.ts).
   */
  tpot?: ScrapedHistogram;
}

/** One scrape's result: the metrics, or a stable cause (timeout, connection, http_<status>, too_large, a parser cause). */
export type ScrapeOutcome = { ok: true; metrics: PodMetrics } | { ok: false; cause: string; message: string };

/**
 * Why a pod is or is not a candidate. `fresh` and `unscraped` pods are candidates unless draining;
 * `pending` pods await their first scrape; `stale` ones have not been scraped successfully for
 * staleAfterMs; `failing` ones failed their last scrapes.
 */
export type Freshness = "fresh" | "unscraped" | "pending" | "stale" | "failing";
