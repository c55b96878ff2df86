// Kubernetes discovery (SPEC.md §5): per pool, lists and watches the pods its label selector picks and
// hands the pool's complete set of ready pods, as PodSpecs, to a sink whenever that set changes.

import { isIP } from "node:net";
import { CoreV1Api, KubeConfig, Observable, Watch, type ObservableMiddleware, type V1Pod } from "@kubernetes/client-node";
import { Counter, type Registry } from "prom-client";
import type { Cancel, Clock } from "../clock.js";
import type { PodsConfig } from "../config/schema.js";
import { OncePerCause, type Logger } from "../log.js";
import { registered } from "../metrics.js";
import type { PodRole, PodSpec } from "./types.js";

/** The label llm-d's inference scheduler reads a pod's role from. */
export const ROLE_LABEL = "llm-d.ai/role";
/**
 * Read from the pod as its rack. Kubernetes puts this label on Nodes, not on Pods: a pod has it only
 * if its template or an admission policy puts it there (README, Kubernetes discovery). Reading Nodes
 * would take a cluster-wide role.
 */
export const ZONE_LABEL = "topology.kubernetes.io/zone";

/**
 * The role values llm-d's scheduler knows (pkg/plugins/filter/pd_role.go, epd_role.go), as the
 * headroom role that takes the same work: its prefill filter takes prefill, encode-prefill,
 * prefill-decode, both and encode-prefill-decode; its decode filter decode, prefill-decode, both and
 * encode-prefill-decode. Encoding is not scheduled here, so an encode-only pod has no role.
 */
const ROLES = new Map<string, PodRole>([
  ["prefill", "prefill"],
  ["encode-prefill", "prefill"],
  ["decode", "decode"],
  ["both", "both"],
  ["prefill-decode", "both"],
  ["encode-prefill-decode", "both"],
]);

/** llm-d's decode filter takes a pod without the label, and its prefill filter does not. */
const UNLABELLED_ROLE: PodRole = "decode";

export const KUBERNETES_DEFAULTS = Object.freeze({
  backoffInitialMs: 1000,
  backoffMaxMs: 30_000,
  requestTimeoutMs: 10_000,
});

export type KubernetesDiscoveryOptions = NonNullable<PodsConfig["kubernetes"]> & {
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** The pool's complete set of ready pods, sorted by address: after the first list, then on every change. */
  onPods: (pool: string, pods: PodSpec[]) => void;
  /** A failed list or watch is retried after this, doubling per consecutive failure up to backoffMaxMs. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** A list request that has not answered by then is abandoned and retried. */
  requestTimeoutMs?: number;
};

export class KubernetesDiscovery {
  /** The configuration kubectl would use: $KUBECONFIG, ~/.kube/config, or the pod's service account. */
  static defaultKubeConfig(): KubeConfig {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
    return kubeConfig;
  }

  private readonly pools: PoolWatch[];

  constructor(kubeConfig: KubeConfig, options: KubernetesDiscoveryOptions) {
    const name = "headroom_kubernetes_watch_errors_total";
    const errors = registered(
      options.registry,
      name,
      Counter<"pool" | "cause">,
      () =>
        new Counter({
          name,
          help: "Failed pod lists and dropped or failed pod watches, by pool and cause (HTTP statuses by class); each is retried with backoff",
          labelNames: ["pool", "cause"],
          registers: [options.registry],
        }),
    );
    const shared: Shared = {
      options,
      api: kubeConfig.makeApiClient(CoreV1Api),
      watch: new Watch(kubeConfig),
      once: new OncePerCause(options.logger),
      errors,
      backoffInitialMs: options.backoffInitialMs ?? KUBERNETES_DEFAULTS.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs ?? KUBERNETES_DEFAULTS.backoffMaxMs,
      requestTimeoutMs: options.requestTimeoutMs ?? KUBERNETES_DEFAULTS.requestTimeoutMs,
    };
    this.pools = Object.entries(options.selectors).map(([pool, selector]) => new PoolWatch(shared, pool, selector));
  }

  start(): void {
    for (const pool of this.pools) pool.start();
  }

  /** Stops every list, watch and timer; the sink hears nothing more. */
  close(): void {
    for (const pool of this.pools) pool.close();
  }
}

interface Shared {
  options: KubernetesDiscoveryOptions;
  api: CoreV1Api;
  watch: Watch;
  once: OncePerCause;
  errors: Counter<"pool" | "cause">;
  backoffInitialMs: number;
  backoffMaxMs: number;
  requestTimeoutMs: number;
}

/**
 * One pool's list + watch loop: list, then watch from the list's resourceVersion; relist every
 * resyncMs, and after a failure (with backoff). Every request belongs to an attempt; answers to an
 * attempt that has been superseded (or to a closed watcher) are ignored.
 */
class PoolWatch {
  /** The pool's pods as the API server last described them, ready or not, by uid. */
  private pods = new Map<string, V1Pod>();
  private resourceVersion = "";
  private attempt = 0;
  private failures = 0;
  private lastSent: string | undefined;
  /** Pods currently skipped and warned about (role label or podIP), by namespace/name. */
  private skipped = new Set<string>();
  private abortRequest: AbortController | undefined;
  private cancelResync: Cancel | undefined;
  /** A pending relist after a failure, or rewatch after a watch the server ended. */
  private cancelRetry: Cancel | undefined;
  /** Fails a watch whose response has not started within requestTimeoutMs. */
  private cancelWatchStart: Cancel | undefined;
  private closed = false;

  constructor(
    private readonly shared: Shared,
    private readonly pool: string,
    private readonly selector: string,
  ) {}

  start(): void {
    this.relist();
  }

  close(): void {
    this.closed = true;
    this.begin();
  }

  private relist(): void {
    if (this.closed) return;
    const attempt = this.begin();
    const abort = new AbortController();
    this.abortRequest = abort;
    const timeout = AbortSignal.timeout(this.shared.requestTimeoutMs);
    this.shared.api
      .listNamespacedPod(
        { namespace: this.shared.options.namespace, labelSelector: this.selector },
        withSignal(AbortSignal.any([abort.signal, timeout])),
      )
      .then(
        (list) => {
          if (attempt !== this.attempt) return;
          this.pods = new Map(list.items.map((pod) => [keyOf(pod), pod]));
          this.resourceVersion = list.metadata?.resourceVersion ?? "";
          this.shared.once.clear(this.subject, "kubernetes pod discovery recovered", { pool: this.pool });
          this.send();
          this.cancelResync = this.shared.options.clock.schedule(this.shared.options.resyncMs, () => this.relist());
          this.watch(attempt);
        },
        (error: unknown) => {
          if (attempt !== this.attempt) return;
          this.fail(timeout.aborted ? "timeout" : causeOf(error), describe(error));
        },
      );
  }

  /** Watches from the last resourceVersion seen, within the current attempt. */
  private watch(attempt: number): void {
    const path = `/api/v1/namespaces/${encodeURIComponent(this.shared.options.namespace)}/pods`;
    const query = { labelSelector: this.selector, resourceVersion: this.resourceVersion, allowWatchBookmarks: true };
    // The client's watch has no timeout of its own (client-node 1.4 replaces its timeout signal with
    // the one it hands back once the response starts): a server that takes the request and never
    // answers would leave the pool blind until the resync. Such a request cannot be aborted; the
    // relist goes on without it.
    const { requestTimeoutMs } = this.shared;
    this.cancelWatchStart = this.shared.options.clock.schedule(requestTimeoutMs, () => {
      if (attempt === this.attempt) this.fail("timeout", `watch: no response within ${requestTimeoutMs} ms`);
    });
    this.shared.watch
      .watch(
        path,
        query,
        (type, object) => {
          if (attempt === this.attempt) this.onEvent(type, object);
        },
        (error) => {
          if (attempt === this.attempt) this.onWatchEnd(error);
        },
      )
      .then(
        (controller) => {
          // The controller arrives once the response has started; by then the attempt may be over.
          if (attempt === this.attempt) {
            this.cancelWatchStart?.();
            this.cancelWatchStart = undefined;
            this.abortRequest = controller;
          } else controller.abort();
        },
        (error: unknown) => {
          if (attempt === this.attempt) this.fail(causeOf(error), describe(error));
        },
      );
  }

  private onEvent(type: string, object: Partial<V1Pod> & { code?: number; message?: string }): void {
    if (type === "ERROR") {
      // A Status in the stream: 410 means the resourceVersion is too old to watch from.
      const code = object.code;
      this.fail(causeOf({ code }), `watch error: ${object.message ?? code}`);
      return;
    }
    this.failures = 0;
    this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
    if (type === "ADDED" || type === "MODIFIED") this.pods.set(keyOf(object), object);
    else if (type === "DELETED") this.pods.delete(keyOf(object));
    else return;
    this.send();
  }

  /**
   * A watch the server ends cleanly (its request timeout) is routine: watch again from where it
   * stopped. One that breaks is a failure. The pause before a routine rewatch keeps a server that
   * ends every watch at once from being asked in a tight loop.
   */
  private onWatchEnd(error: unknown): void {
    if (error !== null && error !== undefined) {
      this.fail(causeOf(error), describe(error));
      return;
    }
    this.failures = 0;
    const attempt = this.attempt;
    this.cancelRetry = this.shared.options.clock.schedule(this.shared.backoffInitialMs, () => {
      if (attempt === this.attempt) this.watch(attempt);
    });
  }

  /** Counts and logs (once per cause) a failed list or watch, and relists after the backoff. */
  private fail(cause: string, message: string): void {
    this.begin();
    this.failures++;
    const retryInMs = Math.min(this.shared.backoffMaxMs, this.shared.backoffInitialMs * 2 ** (this.failures - 1));
    this.shared.errors.inc({ pool: this.pool, cause: causeLabel(cause) });
    this.shared.once.fail(this.subject, cause, "kubernetes pod discovery failed", { pool: this.pool, message, retryInMs });
    this.cancelRetry = this.shared.options.clock.schedule(retryInMs, () => this.relist());
  }

  /**
   * Ends the current attempt (its request and timers) and starts a new one. The attempt moves on
   * before the abort, which can call the old attempt's callbacks on the spot.
   */
  private begin(): number {
    const attempt = ++this.attempt;
    const request = this.abortRequest;
    this.abortRequest = undefined;
    request?.abort();
    this.cancelResync?.();
    this.cancelResync = undefined;
    this.cancelRetry?.();
    this.cancelRetry = undefined;
    this.cancelWatchStart?.();
    this.cancelWatchStart = undefined;
    return attempt;
  }

  private get subject(): string {
    return `kubernetes:${this.pool}`;
  }

  /** Sends the pool's ready pods to the sink if they differ from what it last heard. */
  private send(): void {
    const { port, metricsPath } = this.shared.options;
    const specs: PodSpec[] = [];
    const present = new Set<string>();
    const skipped = new Set<string>();
    for (const pod of this.pods.values()) {
      const name = `${pod.metadata?.namespace ?? this.shared.options.namespace}/${pod.metadata?.name ?? "?"}`;
      present.add(name);
      const spec = podSpecOf(pod, this.pool, port, metricsPath);
      if (spec === null) continue;
      if (spec === "bad_role" || spec === "bad_ip") {
        skipped.add(name);
        const bad = spec === "bad_role" ? { label: ROLE_LABEL, value: pod.metadata?.labels?.[ROLE_LABEL] ?? null, accepted: [...ROLES.keys()] } : { podIP: pod.status?.podIP };
        this.shared.once.fail(`pod:${name}`, spec, spec === "bad_role" ? "kubernetes pod skipped: its role label names no prefill or decode role" : "kubernetes pod skipped: its podIP is not an IP address", {
          pool: this.pool,
          pod: name,
          ...bad,
        });
        continue;
      }
      specs.push(spec);
    }
    for (const name of this.skipped) {
      if (skipped.has(name)) continue;
      if (present.has(name)) this.shared.once.clear(`pod:${name}`, "kubernetes pod no longer skipped", { pool: this.pool, pod: name });
      else this.shared.once.forget(`pod:${name}`);
    }
    this.skipped = skipped;

    specs.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const serialized = JSON.stringify(specs);
    if (serialized === this.lastSent) return;
    this.lastSent = serialized;
    try {
      this.shared.options.onPods(this.pool, specs);
    } catch (error) {
      this.shared.options.logger.log("error", "kubernetes pod sink failed", { pool: this.pool, error: String(error) });
    }
  }
}

/**
 * A watched pod as a member of `pool`: its spec; null while it has no IP or is not ready; "bad_role"
 * when its role label names no role headroom schedules; "bad_ip" when its podIP is not an IP address.
 */
export function podSpecOf(pod: Partial<V1Pod>, pool: string, port: number, metricsPath: string): PodSpec | "bad_role" | "bad_ip" | null {
  const ip = pod.status?.podIP;
  if (!ip || !isReady(pod)) return null;
  const label = pod.metadata?.labels?.[ROLE_LABEL];
  const role = label === undefined ? UNLABELLED_ROLE : ROLES.get(label);
  if (role === undefined) return "bad_role";
  if (isIP(ip) === 0) return "bad_ip";
  const host = isIP(ip) === 6 ? `[${ip}]` : ip;
  const spec: PodSpec = { address: `${host}:${port}`, pool, role };
  if (pod.spec?.nodeName) spec.node = pod.spec.nodeName;
  const zone = pod.metadata?.labels?.[ZONE_LABEL];
  if (zone) spec.rack = zone;
  if (metricsPath !== "") spec.metricsUrl = `http://${host}:${port}${metricsPath}`;
  if (pod.metadata?.deletionTimestamp) spec.draining = true;
  return spec;
}

function isReady(pod: Partial<V1Pod>): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

function keyOf(pod: Partial<V1Pod>): string {
  return pod.metadata?.uid ?? `${pod.metadata?.namespace}/${pod.metadata?.name}`;
}

/**
 * Per-request options that let an abort signal reach the request. The generated client takes
 * middleware in its own Observable form.
 */
function withSignal(signal: AbortSignal) {
  const middleware: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (context) => new Observable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: "append" as const };
}

/**
 * `http_<status>` for an answer (the client's ApiException and a Status in a watch stream carry a
 * numeric `code`, the Watch's error a `statusCode`), `gone` for 410, `connection` for anything that
 * never got an answer.
 */
function causeOf(error: unknown): string {
  const e = error as { code?: unknown; statusCode?: unknown } | null;
  const status = typeof e?.statusCode === "number" ? e.statusCode : typeof e?.code === "number" ? e.code : undefined;
  if (status === undefined) return "connection";
  if (status === 410) return "gone";
  return Number.isInteger(status) && status >= 100 && status <= 599 ? `http_${status}` : "bad_status";
}

function causeLabel(cause: string): string {
  return /^http_\d{3}$/.test(cause) ? `http_${cause[5]}xx` : cause;
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}
