/**
 * Turns reprise.yaml bytes into a YAML document safely, and maps document paths back to
 * line:col. Hostile input (bombs, deep nesting, bad bytes) becomes an error here, before the
 * `yaml` composer sees it: its composer recurses, and a few thousand levels of nesting crash
 * the process instead of throwing.
 */
import {
  Composer,
  type CST,
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
} from "yaml";

/** docs/design.md section 2: a spec file is at most 1 MiB. */
export const MAX_SPEC_BYTES = 1024 * 1024;
/** Nesting a spec needs is under 10 levels; 64 leaves room and keeps the composer safe. */
export const MAX_NESTING = 64;
/** Aliases are legitimate for sharing blocks; more than this is an expansion attack. */
export const MAX_ALIASES = 100;

export interface Position {
  line: number;
  col: number;
}

export type SourceProblem = {
  code: "E_YAML" | "E_ENCODING" | "E_DUPLICATE_KEY" | "E_LIMIT";
  message: string;
  position: Position;
};

export interface YamlSource {
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

export type LoadResult =
  | { ok: true; source: YamlSource; value: unknown }
  | { ok: false; problems: SourceProblem[] };

const START: Position = { line: 1, col: 1 };

export function loadYaml(input: string | Uint8Array): LoadResult {
  const decoded = decode(input);
  if (!decoded.ok) return { ok: false, problems: [decoded.problem] };
  const text = decoded.text;

  const lineCounter = new LineCounter();
  const cst = Array.from(new Parser(lineCounter.addNewLine).parse(text));
  const deep = findTooDeep(cst);
  if (deep !== null) {
    return {
      ok: false,
      problems: [
        {
          code: "E_LIMIT",
          message: `nesting deeper than ${MAX_NESTING} levels; a reprise.yaml needs far fewer`,
          position: lineCounter.linePos(deep),
        },
      ],
    };
  }

  // The yaml package's own uniqueKeys check is quadratic in the size of a mapping (seconds for
  // a 10,000-node workflow); findDuplicateKeys does the same in one pass.
  const composer = new Composer({ uniqueKeys: false, prettyErrors: false, strict: true });
  const docs = Array.from(composer.compose(cst, true, text.length));
  const problems: SourceProblem[] = [];
  for (const doc of docs) {
    // Reprise uses no YAML tags: what the yaml package only warns about (an unresolved tag)
    // would silently change a value's type, so it is an error here.
    for (const e of [...doc.errors, ...doc.warnings]) {
      problems.push({
        code: e.code === "DUPLICATE_KEY" ? "E_DUPLICATE_KEY" : "E_YAML",
        message: yamlMessage(e.code, e.message),
        position: lineCounter.linePos(e.pos[0]),
      });
    }
  }
  const first = docs[0];
  if (first && problems.length === 0) {
    for (const offset of findDuplicateKeys(first)) {
      problems.push({
        code: "E_DUPLICATE_KEY",
        message: "duplicate key: each key may appear once in a mapping",
        position: lineCounter.linePos(offset),
      });
    }
  }
  if (docs.length > 1) {
    const second = docs[1];
    problems.push({
      code: "E_YAML",
      message: "several YAML documents in one file; reprise.yaml holds exactly one (remove `---`)",
      position: second ? lineCounter.linePos(second.range[0]) : START,
    });
  }
  if (problems.length > 0 || first === undefined) {
    if (problems.length === 0)
      problems.push({ code: "E_YAML", message: "empty file", position: START });
    return { ok: false, problems: dedupe(problems) };
  }

  const unresolved = findUnresolvedAlias(first);
  if (unresolved !== null) {
    return {
      ok: false,
      problems: [
        {
          code: "E_YAML",
          message: `alias *${unresolved.name} has no anchor &${unresolved.name} before it`,
          position: lineCounter.linePos(unresolved.offset),
        },
      ],
    };
  }
  let value: unknown;
  try {
    value = first.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const bomb = message.includes("Excessive alias count");
    return {
      ok: false,
      problems: [
        {
          code: bomb ? "E_LIMIT" : "E_YAML",
          message: bomb
            ? `aliases expand too much (more than ${MAX_ALIASES} alias uses): refusing a possible YAML bomb`
            : `cannot read the YAML: ${message}`,
          position: START,
        },
      ],
    };
  }
  return { ok: true, source: { doc: first, lineCounter }, value };
}

function yamlMessage(code: string, message: string): string {
  if (code === "DUPLICATE_KEY") return "duplicate key: each key may appear once in a mapping";
  // The yaml package appends " at line L, column C" and a source excerpt; we carry position ourselves.
  const firstLine = message.split("\n")[0] ?? message;
  return firstLine.replace(/ at line \d+, column \d+:?$/, "");
}

function dedupe(problems: SourceProblem[]): SourceProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.position.line}:${p.position.col}:${p.code}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Decoding

type Decoded = { ok: true; text: string } | { ok: false; problem: SourceProblem };

function decode(input: string | Uint8Array): Decoded {
  if (typeof input === "string") {
    if (utf8Length(input) > MAX_SPEC_BYTES) return { ok: false, problem: tooLarge() };
    return { ok: true, text: stripBom(input) };
  }
  if (input.byteLength > MAX_SPEC_BYTES) return { ok: false, problem: tooLarge() };
  const bad = firstInvalidUtf8(input);
  if (bad !== -1) {
    return {
      ok: false,
      problem: {
        code: "E_ENCODING",
        message: `not valid UTF-8 (byte 0x${(input[bad] ?? 0).toString(16).padStart(2, "0")} at offset ${bad}); save the file as UTF-8`,
        position: bytePosition(input, bad),
      },
    };
  }
  return { ok: true, text: stripBom(new TextDecoder("utf-8").decode(input)) };
}

function tooLarge(): SourceProblem {
  return {
    code: "E_LIMIT",
    message: `file larger than ${MAX_SPEC_BYTES} bytes (1 MiB); split data out of the spec`,
    position: START,
  };
}

function stripBom(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Offset of the first byte that breaks UTF-8, or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i] as number;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

function bytePosition(b: Uint8Array, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (b[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

// ---------------------------------------------------------------------------------------------
// Nesting check on the CST, iteratively (the point is not to recurse).

function findTooDeep(tokens: CST.Token[]): number | null {
  const stack: Array<{ token: CST.Token; depth: number }> = tokens.map((token) => ({
    token,
    depth: 0,
  }));
  while (stack.length > 0) {
    const { token, depth } = stack.pop() as { token: CST.Token; depth: number };
    if (depth > MAX_NESTING) return token.offset;
    switch (token.type) {
      case "document":
        if (token.value) stack.push({ token: token.value, depth });
        break;
      case "block-map":
      case "block-seq":
      case "flow-collection":
        for (const item of token.items as CST.CollectionItem[]) {
          if (item.key) stack.push({ token: item.key, depth: depth + 1 });
          if (item.value) stack.push({ token: item.value, depth: depth + 1 });
        }
        break;
      case "block-scalar":
        break;
      default:
        break;
    }
  }
  return null;
}

function findUnresolvedAlias(doc: Document.Parsed): { name: string; offset: number } | null {
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isAlias(node) && node.resolve(doc) === undefined) {
      return { name: node.source, offset: rangeStart(node) ?? 0 };
    }
    if (isMap(node)) for (const pair of node.items) stack.push(pair.key, pair.value);
    // One push per item: spreading a 500,000-item sequence into push() overflows the stack.
    else if (isSeq(node)) for (const item of node.items) stack.push(item);
  }
  return null;
}

/** Offsets of every key that repeats an earlier key of the same mapping. */
function findDuplicateKeys(doc: Document.Parsed): number[] {
  const found: number[] = [];
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? `s:${String(pair.key.value)}` : `n:${String(pair.key)}`;
        if (seen.has(key)) found.push(rangeStart(pair.key) ?? 0);
        seen.add(key);
        stack.push(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return found.sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// Locating a path of the plain value in the document.

export type PathSegment = string | number;
export type Anchor = "key" | "value";

/**
 * Position of the node at `path`: its key (anchor "key") or its value. When the path does not
 * exist (a missing key), the deepest existing ancestor's key is returned, which is where a
 * person would add it.
 */
export function locate(source: YamlSource, path: readonly PathSegment[], anchor: Anchor): Position {
  const { doc, lineCounter } = source;
  let node: unknown = doc.contents;
  let best: number | null = rangeStart(node);
  let keyStart: number | null = null;
  let found = true;
  for (const seg of path) {
    node = deref(doc, node);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && keyString(p.key) === String(seg));
      if (!pair) {
        found = false;
        break;
      }
      keyStart = rangeStart(pair.key) ?? rangeStart(pair.value);
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number" && node.items[seg] !== undefined) {
      node = node.items[seg];
      keyStart = rangeStart(deref(doc, node));
    } else {
      found = false;
      break;
    }
    best = keyStart ?? best;
  }
  if (found && anchor === "value") {
    const target = deref(doc, node);
    const start = rangeStart(target);
    // An empty value (`key:` with nothing after it) has no text of its own: point at the key.
    const empty = isScalar(target) && target.value === null && !target.source;
    if (start !== null && !empty) best = start;
  }
  return best === null ? START : lineCounter.linePos(best);
}

function deref(doc: Document.Parsed, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function rangeStart(node: unknown): number | null {
  if (node && typeof node === "object" && "range" in node) {
    const r = (node as { range?: [number, number, number] | null }).range;
    return r ? r[0] : null;
  }
  return null;
}

function keyString(key: unknown): string | null {
  if (isScalar(key)) return String(key.value);
  if (key === null || key === undefined) return null;
  return String(key);
}
