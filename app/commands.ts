/**
 * Comment commands on pull requests (docs/design.md section 8): `/relaunch [EXECUTION] [--recover]
 * [--no-cache]`, `/run WORKFLOW [name=value...]`, `/cancel [EXECUTION]`. A command is a line that
 * starts with `/word`; quoted lines (`>`) and fenced code blocks are someone else's words and are
 * never read as commands.
 */

export type Command =
  | { kind: "relaunch"; execution: string | null; recover: boolean; noCache: boolean }
  | { kind: "run"; workflow: string; inputs: string[] }
  | { kind: "cancel"; execution: string | null }
  | { kind: "unknown"; name: string; problem: string };

export const HELP = [
  "Reprise understands these commands, one per line at the start of a comment:",
  "",
  "- `/relaunch [EXECUTION] [--recover] [--no-cache]`: run the workflow of EXECUTION (default: this pull request's latest) again at the head commit; the cache decides what runs. `--recover` also reuses its succeeded nodes by content, `--no-cache` recomputes and overwrites the cache.",
  "- `/run WORKFLOW [name=value...]`: start WORKFLOW at the head commit with these inputs (strings as written, other types as JSON).",
  "- `/cancel [EXECUTION]`: stop EXECUTION (default: this pull request's latest running one).",
  "",
  "Commands need write permission on the repository.",
].join("\n");

/** The commands of a comment, in order; empty when it has none. */
export function parseCommands(body: string): Command[] {
  const out: Command[] = [];
  let fence: string | null = null;
  for (const raw of body.split(/\r?\n/)) {
    const line = raw.trim();
    const f = /^(`{3,}|~{3,})/.exec(line);
    if (f) {
      const mark = f[1] as string;
      if (fence === null) fence = mark;
      else if (mark[0] === fence[0] && mark.length >= fence.length) fence = null;
      continue;
    }
    if (fence !== null || line.startsWith(">")) continue;
    // Indented code blocks (4 spaces) are code, too.
    if (/^( {4}|\t)/.test(raw)) continue;
    const m = /^\/([A-Za-z][\w-]*)(?=\s|$)(.*)$/.exec(line);
    if (!m) continue;
    out.push(parseCommand((m[1] as string).toLowerCase(), (m[2] as string).trim()));
  }
  return out;
}

function parseCommand(name: string, rest: string): Command {
  const words = rest === "" ? [] : rest.split(/\s+/);
  switch (name) {
    case "relaunch": {
      const flags = words.filter((w) => w.startsWith("--"));
      const bad = flags.filter((f) => f !== "--recover" && f !== "--no-cache");
      const args = words.filter((w) => !w.startsWith("--"));
      if (bad.length > 0)
        return { kind: "unknown", name, problem: `unknown option ${bad.join(", ")}` };
      if (args.length > 1)
        return { kind: "unknown", name, problem: "takes at most one execution id" };
      return {
        kind: "relaunch",
        execution: args[0] ?? null,
        recover: flags.includes("--recover"),
        noCache: flags.includes("--no-cache"),
      };
    }
    case "run": {
      const [workflow, ...inputs] = words;
      if (!workflow || workflow.includes("="))
        return { kind: "unknown", name, problem: "needs the workflow's name: `/run WORKFLOW`" };
      const bad = inputs.filter((i) => i.indexOf("=") <= 0);
      if (bad.length > 0)
        return { kind: "unknown", name, problem: `inputs are name=value, got ${bad.join(", ")}` };
      return { kind: "run", workflow, inputs };
    }
    case "cancel": {
      if (words.length > 1)
        return { kind: "unknown", name, problem: "takes at most one execution id" };
      return { kind: "cancel", execution: words[0] ?? null };
    }
    default:
      return { kind: "unknown", name, problem: "is not a Reprise command" };
  }
}
