/**
 * Who is looking at the UI. The UI only reads, and it accepts what the API accepts: an
 * `Authorization: Bearer` header, or the same token kept in an HttpOnly, SameSite=Strict cookie
 * set by the /login form (a browser cannot send a header on a link). An open server (loopback,
 * nothing configured) needs neither.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Authenticator, Principal } from "../auth.js";
import { ApiError } from "../errors.js";

export const COOKIE = "reprise_token";

/** The caller, or null when it brings no credential (or a cookie that no longer works). */
export async function principalOf(c: Context, auth: Authenticator): Promise<Principal | null> {
  const header = c.req.header("authorization");
  if (header) return auth.principal(header);
  if (auth.open) return auth.principal(undefined);
  const token = getCookie(c, COOKIE);
  if (!token) return null;
  try {
    return await auth.principal(`Bearer ${token}`);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    // Revoked or expired since the login: forget it, and ask again.
    deleteCookie(c, COOKIE, { path: "/" });
    return null;
  }
}

/** Checks `token` as the API would and keeps it in the session cookie; the error says why not. */
export async function logIn(
  c: Context,
  auth: Authenticator,
  token: string,
  secure: boolean,
): Promise<{ ok: true; principal: Principal } | { ok: false; message: string }> {
  if (!/^\S+$/.test(token)) return { ok: false, message: "paste an API token or an OIDC token" };
  try {
    const principal = await auth.principal(`Bearer ${token}`);
    setCookie(c, COOKIE, token, { path: "/", httpOnly: true, sameSite: "Strict", secure });
    return { ok: true, principal };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return { ok: false, message: e.message };
    throw e;
  }
}

export function logOut(c: Context): void {
  deleteCookie(c, COOKIE, { path: "/" });
}

/** Only a path on this server: never another host (`//evil`, `/\evil`) after logging in. */
export function safeNext(next: string | undefined): string {
  const local = next?.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\");
  return local ? (next as string) : "/";
}
