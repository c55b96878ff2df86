// The kubernetes actuator: sets the replicas of each pool's prefill, decode and both workloads
// (Deployments or StatefulSets) through their scale subresource with the official client: read the
// Scale, and replace it when the replicas differ (a 409 conflict re-reads and tries again). Replicas
// that go down are set before those that go up, so freed GPUs are there for the new workers. A
// decision sets only the roles it changes from what the planner knows runs; read() tells a planner
// what the pool runs.

import { AppsV1Api, Observable, type KubeConfig, type ObservableMiddleware, type V1Scale } from "@kubernetes/client-node";
import type { Actuator } from "./actuators.js";
import { WORKER_ROLES, type Layout, type ScaleRequest, type WorkerRole } from "./types.js";

export interface WorkloadRef {
  kind: "Deployment" | "StatefulSet";
  name: string;
  /** Absent: the actuator's namespace. */
  namespace?: string;
}

export type PoolWorkloads = Partial<Record<WorkerRole, WorkloadRef>>;

export const KUBERNETES_ACTUATOR_DEFAULTS = Object.freeze({
  requestTimeoutMs: 10_000,
  /** Re-reads after a 409 (someone else changed the Scale in between) before the attempt fails. */
  conflictRetries: 3,
});

export interface KubernetesActuatorOptions {
  /** Pool name -> the workload of each role it scales. */
  workloads: Record<string, PoolWorkloads>;
  /**
   * Of workloads that name none. Absent: the kubeconfig context's namespace (in a pod, the pod's own),
   * else `default`. The configuration file requires it (config/schema.ts).
   */
  namespace?: string;
  requestTimeoutMs?: number;
  conflictRetries?: number;
}

function withTimeout(ms: number) {
  const middleware: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(context));
    },
    post: (context) => new Observable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: "append" as const };
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

function describe(ref: WorkloadRef, namespace: string): string {
  return `${ref.kind} ${namespace}/${ref.name}`;
}

export class KubernetesActuator implements Actuator {
  readonly kind = "kubernetes";
  private readonly api: AppsV1Api;
  private readonly namespace: string;
  private readonly timeoutMs: number;
  private readonly conflictRetries: number;

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: KubernetesActuatorOptions,
  ) {
    this.api = kubeConfig.makeApiClient(AppsV1Api);
    this.namespace = options.namespace ?? kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? "default";
    this.timeoutMs = options.requestTimeoutMs ?? KUBERNETES_ACTUATOR_DEFAULTS.requestTimeoutMs;
    this.conflictRetries = options.conflictRetries ?? KUBERNETES_ACTUATOR_DEFAULTS.conflictRetries;
  }

  /** The replicas of the pool's workloads (0 for a role without one); undefined for a pool without workloads. */
  async read(pool: string): Promise<Layout | undefined> {
    const workloads = this.options.workloads[pool] ?? {};
    if (!WORKER_ROLES.some((role) => workloads[role] !== undefined)) return undefined;
    const count = async (role: WorkerRole) => {
      const ref = workloads[role];
      return ref === undefined ? 0 : ((await this.readScale(ref)).spec?.replicas ?? 0);
    };
    const [prefill, decode, both] = await Promise.all([count("prefill"), count("decode"), count("both")]);
    return { prefill, decode, both };
  }

  async apply(request: ScaleRequest): Promise<void> {
    const workloads = this.options.workloads[request.pool] ?? {};
    const missing = WORKER_ROLES.filter((role) => request[role] > 0 && workloads[role] === undefined);
    if (missing.length > 0) throw new Error(`pool ${request.pool} has no kubernetes workload for role ${missing.join(", ")}`);
    // Only the roles the decision changes from what the planner knows runs (`from`): a role someone
    // else scaled since the planner last read it keeps what they set (the planner reads it at its next
    // interval). Without `from`, every role whose replicas differ.
    const from = request.from;
    const targets = WORKER_ROLES.flatMap((role) => {
      const ref = workloads[role];
      return ref === undefined || (from !== undefined && from[role] === request[role]) ? [] : [{ ref, replicas: request[role] }];
    });
    const scales = await Promise.all(targets.map((t) => this.readScale(t.ref)));
    const changes = targets
      .map((t, i) => ({ ...t, from: scales[i]!.spec?.replicas ?? 0 }))
      .filter((c) => c.from !== c.replicas)
      .sort((a, b) => a.replicas - a.from - (b.replicas - b.from));
    for (const c of changes) await this.scale(c.ref, c.replicas);
  }

  private async scale(ref: WorkloadRef, replicas: number): Promise<void> {
    for (let conflicts = 0; ; conflicts++) {
      const current = await this.readScale(ref);
      if ((current.spec?.replicas ?? 0) === replicas) return;
      try {
        await this.replace(ref, { ...current, spec: { ...current.spec, replicas } });
        return;
      } catch (err) {
        if (statusOf(err) !== 409 || conflicts >= this.conflictRetries) throw this.failure("replace", ref, err);
      }
    }
  }

  private async readScale(ref: WorkloadRef): Promise<V1Scale> {
    const args = { name: ref.name, namespace: ref.namespace ?? this.namespace };
    try {
      return ref.kind === "Deployment"
        ? await this.api.readNamespacedDeploymentScale(args, withTimeout(this.timeoutMs))
        : await this.api.readNamespacedStatefulSetScale(args, withTimeout(this.timeoutMs));
    } catch (err) {
      throw this.failure("read", ref, err);
    }
  }

  private replace(ref: WorkloadRef, body: V1Scale): Promise<V1Scale> {
    const args = { name: ref.name, namespace: ref.namespace ?? this.namespace, body };
    return ref.kind === "Deployment"
      ? this.api.replaceNamespacedDeploymentScale(args, withTimeout(this.timeoutMs))
      : this.api.replaceNamespacedStatefulSetScale(args, withTimeout(this.timeoutMs));
  }

  private failure(what: string, ref: WorkloadRef, err: unknown): Error {
    if (err instanceof KubernetesScaleError) return err;
    const status = statusOf(err);
    const cause = status !== undefined ? `HTTP ${status}` : err instanceof Error ? err.message.split("\n")[0]! : String(err);
    return new KubernetesScaleError(`cannot ${what} the scale of ${describe(ref, ref.namespace ?? this.namespace)}: ${cause}`, status);
  }
}

export class KubernetesScaleError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = "KubernetesScaleError";
  }
}
