/**
 * What changed between two versions: tasks and workflows added, removed, changed, renamed or
 * unchanged, and whether the versions are equivalent (same spec digest), which is how a revert
 * is recognised.
 */

export interface VersionSummary {
  specDigest: string;
  tasks: Readonly<Record<string, string>>;
  workflows: Readonly<Record<string, string>>;
}

export interface NamedChanges {
  added: string[];
  removed: string[];
  changed: string[];
  /** Same digest under a new name: `from` is gone, `to` is new. A renamed task keeps its cache. */
  renamed: Array<{ from: string; to: string }>;
  unchanged: string[];
}

export interface VersionDiff {
  equivalent: boolean;
  tasks: NamedChanges;
  workflows: NamedChanges;
}

export function diffVersions(before: VersionSummary | null, after: VersionSummary): VersionDiff {
  const empty: VersionSummary = { specDigest: "", tasks: {}, workflows: {} };
  const a = before ?? empty;
  return {
    equivalent: before !== null && a.specDigest === after.specDigest,
    tasks: diffNamed(a.tasks, after.tasks),
    workflows: diffNamed(a.workflows, after.workflows),
  };
}

function diffNamed(
  before: Readonly<Record<string, string>>,
  after: Readonly<Record<string, string>>,
): NamedChanges {
  const out: NamedChanges = { added: [], removed: [], changed: [], renamed: [], unchanged: [] };
  for (const [name, d] of Object.entries(after)) {
    const old = before[name];
    if (old === undefined) out.added.push(name);
    else if (old === d) out.unchanged.push(name);
    else out.changed.push(name);
  }
  for (const name of Object.keys(before)) if (!(name in after)) out.removed.push(name);
  // Pair removed and added names that carry the same digest.
  const removedByDigest = new Map<string, string[]>();
  for (const name of out.removed.sort()) {
    const d = before[name] as string;
    removedByDigest.set(d, [...(removedByDigest.get(d) ?? []), name]);
  }
  const stillAdded: string[] = [];
  for (const name of out.added.sort()) {
    const candidates = removedByDigest.get(after[name] as string);
    const from = candidates?.shift();
    if (from !== undefined) out.renamed.push({ from, to: name });
    else stillAdded.push(name);
  }
  const renamedFrom = new Set(out.renamed.map((r) => r.from));
  out.added = stillAdded;
  out.removed = out.removed.filter((n) => !renamedFrom.has(n));
  out.changed.sort();
  out.unchanged.sort();
  return out;
}

export function isEmptyDiff(d: VersionDiff): boolean {
  const none = (c: NamedChanges) =>
    c.added.length + c.removed.length + c.changed.length + c.renamed.length === 0;
  return none(d.tasks) && none(d.workflows);
}
