/**
 * Which names a request may call this server by (issue 14, DNS rebinding): a page on
 * `attacker.example` whose name is rebound to 127.0.0.1 reaches the server with
 * `Host: attacker.example`, so only loopback names and the public URL's host are answered. A
 * browser's POST also says where the page came from (`Origin`): it must be this server.
 */
import type { MiddlewareHandler } from "hono";
import { errorBody } from "./errors.js";

/** Exactly `localhost`, an IPv4 literal in 127.0.0.0/8 or `::1` (bracketed or not). */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h === "::1" || h === "[::1]") return true;
  const octets = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (octets?.[1] !== "127") return false;
  return octets.slice(2).every((o) => Number(o) <= 255);
}

/** The host name of a Host header value (`name`, `name:port`, `[v6]:port`); null when malformed. */
export function hostName(header: string): string | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:/?#@[\]\\]+)(?::(\d{1,5}))?$/.exec(header);
  return m ? (m[1] as string).toLowerCase() : null;
}

/** Routes probes and scrapers reach by the pod's IP: they carry nothing a page could use. */
const PROBES = new Set(["/healthz", "/readyz", "/metrics"]);
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * 421 unless the Host names a loopback address or one of `hosts` (the public URL's host, the
 * address listened on); 403 when an unsafe method's Origin is another site.
 */
export function hostCheck(
  publicUrl: string | null,
  hosts: readonly string[] = [],
): MiddlewareHandler {
  const allowed = new Set(hosts.map((h) => h.toLowerCase()));
  const publicOrigin = publicUrl ? new URL(publicUrl).origin : null;
  if (publicUrl) allowed.add(new URL(publicUrl).hostname.toLowerCase());
  return async (c, next) => {
    if (PROBES.has(c.req.path)) return next();
    const header = c.req.header("host") ?? new URL(c.req.url).host;
    const name = hostName(header);
    if (name === null || !(isLoopback(name) || allowed.has(name)))
      return c.json(
        errorBody(
          "misdirected_request",
          `Host "${header.slice(0, 200)}" is not this server's name: call it by a loopback address${publicUrl ? ` or ${publicUrl}` : ", or set REPRISE_PUBLIC_URL to the address clients use"}`,
        ),
        421,
      );
    const origin = c.req.header("origin");
    if (origin !== undefined && UNSAFE.has(c.req.method)) {
      let same = false;
      try {
        const o = new URL(origin);
        same = o.host.toLowerCase() === header.toLowerCase() || o.origin === publicOrigin;
      } catch {
        same = false;
      }
      if (!same)
        return c.json(
          errorBody(
            "forbidden",
            `Origin "${origin.slice(0, 200)}" is not this server: a ${c.req.method} from another site's page is refused`,
          ),
          403,
        );
    }
    return next();
  };
}
