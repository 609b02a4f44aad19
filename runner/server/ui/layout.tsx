/** The page shell and the small pieces every page uses: badges, short SHAs, times, JSON. */
import { type Child, createContext, useContext } from "hono/jsx";
import type { JsonValue } from "../../../core/spec/types.js";
import type { Principal } from "../auth.js";
import { FAVICON, STYLESHEET } from "./assets.js";
import { paths } from "./paths.js";

export interface PageProps {
  title: string;
  principal: Principal;
  /** Trail of links after the brand: [label, href] (href null: the current page). */
  crumbs?: Array<[string, string | null]>;
  /** Reload every N seconds (an execution still running). */
  refresh?: number;
  children?: Child;
}

/** The session's anti-forgery token (session.ts), provided by the UI's `html` for every page. */
export const Csrf = createContext("");

/** Every POST form carries it: the server refuses a form without the session's token. */
export function CsrfField() {
  return <input type="hidden" name="csrf" value={useContext(Csrf)} />;
}

export function Page(p: PageProps) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        {p.refresh ? <meta http-equiv="refresh" content={String(p.refresh)} /> : null}
        <title>{`${p.title} · Reprise`}</title>
        <link rel="stylesheet" href={paths.asset(STYLESHEET.path)} />
        <link rel="icon" type="image/svg+xml" href={paths.asset(FAVICON.path)} />
      </head>
      <body>
        <header class="top">
          <a class="brand" href={paths.home()}>
            Reprise
          </a>
          <nav aria-label="breadcrumbs">
            {(p.crumbs ?? []).map(([label, href]) =>
              href ? <a href={href}>{label}</a> : <span>{label}</span>,
            )}
          </nav>
          {p.principal.kind === "open" ? null : (
            <form method="post" action={paths.logout()}>
              <CsrfField />
              <span class="sub">{p.principal.subject} </span>
              <button class="link" type="submit">
                sign out
              </button>
            </form>
          )}
        </header>
        <main>{p.children}</main>
      </body>
    </html>
  );
}

export const short = (sha: string | null | undefined, n = 12) => (sha ? sha.slice(0, n) : "-");
/** A digest without its `sha256:` prefix, shortened. */
export const shortDigest = (d: string | null | undefined) =>
  d ? short(d.replace(/^sha256:/, "")) : "-";

export function when(d: Date | string | null | undefined): string {
  if (!d) return "-";
  const s = typeof d === "string" ? d : d.toISOString();
  return `${s.slice(0, 10)} ${s.slice(11, 19)}`;
}

export function duration(from: Date | string | null, to: Date | string | null): string {
  if (!from || !to) return "";
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1_000)} s`;
}

export function Badge(p: { kind: string; children?: Child }) {
  return (
    <span class={`badge ${p.kind.toLowerCase().replace(" ", "-")}`}>
      {p.children ?? p.kind.toLowerCase()}
    </span>
  );
}

/** Characters of a value put in a table cell (the cell shows what fits); its tooltip has more. */
const CELL_CHARS = 160;
const TOOLTIP_CHARS = 2_000;

/**
 * A JSON value: in one line when short, else pretty-printed; `compact` (table cells) keeps one
 * line and cuts it.
 */
export function Json(p: { value: JsonValue | undefined | null; compact?: boolean }) {
  if (p.value === undefined) return <span class="sub">-</span>;
  const text = JSON.stringify(p.value);
  if (text.length <= 60) return <code>{text}</code>;
  if (p.compact)
    // One line, cut by the stylesheet where the column ends; the whole value in the tooltip.
    return (
      <code
        class="cell"
        title={text.length > TOOLTIP_CHARS ? `${text.slice(0, TOOLTIP_CHARS)}…` : text}
      >
        {text.length > CELL_CHARS ? `${text.slice(0, CELL_CHARS - 1)}…` : text}
      </code>
    );
  return <pre>{JSON.stringify(p.value, null, 2)}</pre>;
}

/** First line of a commit message. */
export const subject = (message: string | null | undefined) => message?.split("\n")[0] ?? "";

export function ErrorPage(p: {
  principal: Principal | null;
  status: number;
  title: string;
  message: string;
}) {
  const principal = p.principal ?? {
    kind: "open",
    subject: "",
    repos: [],
    readOnly: true,
    actions: [],
  };
  return (
    <Page title={p.title} principal={principal as Principal}>
      <h1>{p.title}</h1>
      <p class="notice error">{p.message}</p>
      <p>
        <a href={paths.home()}>Repositories</a>
      </p>
    </Page>
  );
}
