/**
 * The fake apiserver's etcd: objects by resource, namespace and name, one global resourceVersion
 * counter, and a bounded history of changes that watches resume from. A watch from a version older
 * than the history holds is answered with 410 Gone, as the real apiserver does after compaction.
 */
import { randomUUID } from "node:crypto";
import { clone, type KubeObject, type Resource } from "./objects.js";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  type: EventType;
  resource: Resource["plural"];
  namespace: string;
  object: KubeObject;
  rv: number;
}

type Listener = (event: StoreEvent) => void;

export class ObjectStore {
  #rv = 1;
  /** The oldest version a watch may resume from: anything older was compacted away. */
  #horizon = 1;
  readonly #objects = new Map<string, KubeObject>();
  /** Keys of objects by the uid of each of their owners: the garbage collector's graph. */
  readonly #owned = new Map<string, Set<string>>();
  #history: StoreEvent[] = [];
  readonly #listeners = new Set<Listener>();

  constructor(private readonly historyLimit = 100_000) {}

  get resourceVersion(): number {
    return this.#rv;
  }

  get horizon(): number {
    return this.#horizon;
  }

  get(resource: Resource["plural"], namespace: string, name: string): KubeObject | undefined {
    const obj = this.#objects.get(key(resource, namespace, name));
    return obj && clone(obj);
  }

  /** Copies of the objects of a kind in a namespace, those `where` accepts if given. */
  list(
    resource: Resource["plural"],
    namespace: string,
    where?: (obj: KubeObject) => boolean,
  ): KubeObject[] {
    const prefix = `${resource}/${namespace}/`;
    const out: KubeObject[] = [];
    for (const [k, v] of this.#objects) {
      if (k.startsWith(prefix) && (!where || where(v))) out.push(clone(v));
    }
    return out;
  }

  /** Every object anywhere that names `uid` among its owners (for garbage collection). */
  dependentsOf(uid: string): Array<{ resource: Resource["plural"]; object: KubeObject }> {
    const out: Array<{ resource: Resource["plural"]; object: KubeObject }> = [];
    for (const k of this.#owned.get(uid) ?? []) {
      const v = this.#objects.get(k);
      if (v) out.push({ resource: k.split("/")[0] as Resource["plural"], object: clone(v) });
    }
    return out;
  }

  /** Stores a new object (the caller checked it does not exist), stamping uid, version, time. */
  create(resource: Resource["plural"], obj: KubeObject): KubeObject {
    const stored = clone(obj);
    stored.metadata.uid = randomUUID();
    stored.metadata.creationTimestamp = new Date().toISOString();
    return this.#put("ADDED", resource, stored);
  }

  /** Replaces an existing object with a changed copy; returns undefined when it is gone. */
  update(
    resource: Resource["plural"],
    namespace: string,
    name: string,
    mutate: (obj: KubeObject) => void,
  ): KubeObject | undefined {
    const current = this.#objects.get(key(resource, namespace, name));
    if (!current) return undefined;
    const next = clone(current);
    mutate(next);
    return this.#put("MODIFIED", resource, next);
  }

  remove(resource: Resource["plural"], namespace: string, name: string): KubeObject | undefined {
    const k = key(resource, namespace, name);
    const current = this.#objects.get(k);
    if (!current) return undefined;
    this.#objects.delete(k);
    this.#index(k, current, undefined);
    const rv = ++this.#rv;
    const last = { ...current, metadata: { ...current.metadata, resourceVersion: String(rv) } };
    this.#record({ type: "DELETED", resource, namespace, object: last, rv });
    return clone(last);
  }

  /** Changes after `rv` for a watch to replay, or null when they were compacted away (410). */
  since(rv: number): StoreEvent[] | null {
    if (rv < this.#horizon) return null;
    const start = this.#history.findIndex((e) => e.rv > rv);
    return start === -1 ? [] : this.#history.slice(start);
  }

  /**
   * Forgets the history, as etcd compaction does: every version a client holds is now too old,
   * so every watch must relist (whose answer carries a newer version).
   */
  compact(): void {
    this.#history = [];
    this.#rv += 1;
    this.#horizon = this.#rv;
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #put(type: EventType, resource: Resource["plural"], obj: KubeObject): KubeObject {
    const rv = ++this.#rv;
    obj.metadata.resourceVersion = String(rv);
    const k = key(resource, obj.metadata.namespace, obj.metadata.name);
    this.#index(k, this.#objects.get(k), obj);
    this.#objects.set(k, obj);
    // Stored objects are never changed in place (update works on a copy), so the history and
    // the caller may share this one; they must not change it either.
    this.#record({ type, resource, namespace: obj.metadata.namespace, object: obj, rv });
    return obj;
  }

  #index(k: string, before: KubeObject | undefined, after: KubeObject | undefined): void {
    for (const o of before?.metadata.ownerReferences ?? []) {
      const keys = this.#owned.get(o.uid);
      keys?.delete(k);
      if (keys?.size === 0) this.#owned.delete(o.uid);
    }
    for (const o of after?.metadata.ownerReferences ?? []) {
      let keys = this.#owned.get(o.uid);
      if (!keys) {
        keys = new Set();
        this.#owned.set(o.uid, keys);
      }
      keys.add(k);
    }
  }

  #record(event: StoreEvent): void {
    this.#history.push(event);
    if (this.#history.length > this.historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.historyLimit);
      this.#horizon = (dropped[dropped.length - 1] as StoreEvent).rv;
    }
    for (const l of [...this.#listeners]) l(event);
  }
}

function key(resource: string, namespace: string, name: string): string {
  return `${resource}/${namespace}/${name}`;
}
