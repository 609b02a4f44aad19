/**
 * What each folder may import (docs/design.md section 1, "Layout"), read from the files' own import
 * lines, and no import cycle between files anywhere. `core` <- `db` <- `runner`; the runtime
 * (engine, executors, sources, artifacts, service) sits below the edges that drive it (the CLI,
 * the server, the GitHub App); the Action and the API client talk HTTP and take only `core/`.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

/** Folders that hold no source of the project: packages, builds, the tests themselves. */
const SKIPPED = new Set(["node_modules", "dist", "test", "coverage", "reports"]);

/** Every non-test .ts/.tsx file of the repository, relative to the root. */
function sourceFiles(dir = ROOT): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".") || SKIPPED.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (relative(ROOT, path) !== "action/dist") out.push(...sourceFiles(path));
    } else if (/\.tsx?$/.test(entry.name) && !/\.(test|d)\.tsx?$/.test(entry.name))
      out.push(relative(ROOT, path));
  }
  return out.sort();
}

/**
 * The repository files `file` imports (`import`/`export ... from`, and bare `import "..."`),
 * relative to the root, as the file on disk: `./x.js` is `x.ts` or `x.tsx` when that exists.
 * Packages and node: are left out; type-only imports count (they tie the files as much).
 */
function localImports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(
    /^\s*(?:(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\s+"([^"]+)")/gms,
  )) {
    const spec = (m[1] ?? m[2]) as string;
    if (!spec.startsWith(".")) continue;
    const target = relative(ROOT, resolve(dirname(join(ROOT, file)), spec));
    const ts = [target.replace(/\.js$/, ".ts"), target.replace(/\.js$/, ".tsx")];
    out.push(ts.find((t) => existsSync(join(ROOT, t))) ?? target);
  }
  return out;
}

/** The strongly connected components of more than one file (or a file importing itself). */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's algorithm, iterative: the graph has a few hundred files, each a handful of edges.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const found: string[][] = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; edge: number }> = [{ node: start, edge: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1] as { node: string; edge: number };
      const edges = graph.get(top.node) ?? [];
      if (top.edge < edges.length) {
        const to = edges[top.edge++] as string;
        if (!graph.has(to)) continue;
        if (!index.has(to)) {
          index.set(to, next);
          low.set(to, next++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, edge: 0 });
        } else if (onStack.has(to))
          low.set(top.node, Math.min(low.get(top.node) as number, index.get(to) as number));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent)
        low.set(parent.node, Math.min(low.get(parent.node) as number, low.get(top.node) as number));
      if (low.get(top.node) !== index.get(top.node)) continue;
      const component: string[] = [];
      for (;;) {
        const n = stack.pop() as string;
        onStack.delete(n);
        component.push(n);
        if (n === top.node) break;
      }
      if (component.length > 1 || edges.includes(top.node)) found.push(component.sort());
    }
  }
  return found;
}

interface Rule {
  /** What the rule covers: folders (ending in /) and files; "./" is every file. */
  files: string[];
  /** A file of `files` that must exist (the rule is not checking an empty set). */
  main: string;
  /** It may import only these (and packages); absent: anything but `never`. */
  only?: string[];
  /** It may not import these. */
  never?: string[];
  /** Files and folders the rule leaves out, and why. */
  except?: Record<string, string>;
  why: string;
}

const RULES: Record<string, Rule> = {
  "core/": {
    files: ["core/"],
    main: "core/index.ts",
    only: ["core/"],
    why: "the pure domain calls nothing",
  },
  "db/": {
    files: ["db/"],
    main: "db/store.ts",
    only: ["core/", "db/"],
    why: "the store knows the domain, nothing that drives it",
  },
  "runner/": {
    files: ["runner/"],
    main: "runner/service.ts",
    only: ["core/", "db/", "client/", "runner/"],
    except: {
      "runner/cli/bin.ts": "the composition root: it wires app/ in too (app/'s importers, below)",
    },
    why: "the runtime and its edges; the remote CLI shares the Action's API client",
  },
  "the runtime": {
    files: [
      "runner/engine/",
      "runner/executors/",
      "runner/sources/",
      "runner/artifacts/",
      "runner/service.ts",
    ],
    main: "runner/engine/engine.ts",
    never: ["runner/cli/", "runner/server/", "app/"],
    why: "the runtime sits below the edges that drive it",
  },
  "runner/server/": {
    files: ["runner/server/"],
    main: "runner/server/app.ts",
    never: ["runner/cli/", "app/"],
    why: "the server serves the runtime; the GitHub App mounts itself on it from above",
  },
  "runner/cli/": {
    files: ["runner/cli/"],
    main: "runner/cli/main.ts",
    never: ["app/"],
    except: {
      "runner/cli/bin.ts":
        "the composition root: it plugs the GitHub App's side into the CLI (issue 15)",
    },
    why: "the CLI and the GitHub App are two edges: what they share sits below both",
  },
  "app/": {
    files: ["app/"],
    main: "app/app.ts",
    only: ["core/", "db/", "runner/", "client/", "app/"],
    never: ["runner/cli/"],
    why: "the GitHub App drives the runtime from above; it and the CLI are two edges",
  },
  "app/'s importers": {
    files: ["./"],
    main: "runner/cli/main.ts",
    never: ["app/"],
    except: {
      "app/": "the App's own files",
      "runner/cli/bin.ts": "the composition root: it wires the GitHub App into the process",
    },
    why: "app/ is the top edge: nothing but the composition root imports it",
  },
  "the composition root": {
    files: ["runner/cli/bin.ts"],
    main: "runner/cli/bin.ts",
    only: ["core/", "db/", "client/", "runner/", "app/"],
    why: "it wires the runtime, its edges and the GitHub App into one process",
  },
  "action/src/": {
    files: ["action/src/"],
    main: "action/src/main.ts",
    only: ["core/", "client/", "action/src/"],
    why: "the Action talks to the service over HTTP only",
  },
  "client/": {
    files: ["client/"],
    main: "client/client.ts",
    only: ["core/", "client/"],
    why: "the API client talks HTTP; it renders with core",
  },
};

const FILES = sourceFiles();
const under = (file: string, places: readonly string[]) =>
  places.some((p) => (p === "./" ? true : p.endsWith("/") ? file.startsWith(p) : file === p));

for (const [name, rule] of Object.entries(RULES)) {
  describe(`${name} layering: ${rule.why}`, () => {
    const files = FILES.filter(
      (f) => under(f, rule.files) && !under(f, Object.keys(rule.except ?? {})),
    );

    it("has sources to check", () => {
      expect(files).toContain(rule.main);
    });

    const what = [
      rule.only ? `imports only ${rule.only.join(", ")} and packages` : "",
      rule.never ? `imports nothing of ${rule.never.join(", ")}` : "",
    ]
      .filter(Boolean)
      .join("; ");
    it.each(files)(`%s ${what}`, (file) => {
      for (const target of localImports(file)) {
        if (rule.only) expect(under(target, rule.only), `${file} imports ${target}`).toBe(true);
        if (rule.never) expect(under(target, rule.never), `${file} imports ${target}`).toBe(false);
      }
    });
  });
}

describe("import cycles", () => {
  it("finds a cycle of files, and only the files on it", () => {
    const graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts", "d.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", ["d.ts"]],
      ["e.ts", ["a.ts"]],
    ]);
    expect(cycles(graph)).toEqual(expect.arrayContaining([["a.ts", "b.ts", "c.ts"], ["d.ts"]]));
    expect(cycles(graph)).toHaveLength(2);
  });

  it("no two source files import each other, directly or around a loop", () => {
    expect(FILES.length).toBeGreaterThan(100);
    const graph = new Map(FILES.map((f) => [f, localImports(f)]));
    // Each cycle as the files on it, so a failure names them.
    expect(cycles(graph).map((files) => files.join(" <-> "))).toEqual([]);
  });
});
