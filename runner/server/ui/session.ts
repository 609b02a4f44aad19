/**
 * Who is looking at the UI. The UI only reads, and it accepts what the API accepts: an
 * `Authorization: Bearer` header, or the same token kept in an HttpOnly, SameSite=Strict cookie
 * set by the /login form (a browser cannot send a header on a link). An open server (loopback,
 * nothing configured) needs neither.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
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

/** The session's anti-forgery token (double-submit): a form carries it, and so does its cookie. */
export const CSRF_COOKIE = "reprise_csrf";
export const CSRF_FIELD = "csrf";
const CSRF_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/**
 * This browser's token, made (and set as a cookie) on its first page. Another site's page cannot
 * read it, and the SameSite=Strict cookie does not come with that site's form either.
 */
export function csrfToken(c: Context, secure: boolean): string {
  const kept = getCookie(c, CSRF_COOKIE);
  if (kept && CSRF_SHAPE.test(kept)) return kept;
  const made = randomBytes(32).toString("base64url");
  setCookie(c, CSRF_COOKIE, made, { path: "/", httpOnly: true, sameSite: "Strict", secure });
  return made;
}

/** The form's token is the cookie's. */
export function csrfValid(c: Context, sent: unknown): boolean {
  const kept = getCookie(c, CSRF_COOKIE);
  if (typeof sent !== "string" || !kept || !CSRF_SHAPE.test(kept)) return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(kept);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Only a path on this server: never another host (`//evil`, `/\evil`, `/<TAB>/evil`, which the
 * URL parser reads as `//evil`) after logging in.
 */
export function safeNext(next: string | undefined): string {
  const unsafe = (ch: string) => ch <= " " || ch === "\x7f" || ch === "\\" || /\s/.test(ch);
  if (!next || !/^\/(?![/\\])/.test(next) || [...next].some(unsafe)) return "/";
  const base = "http://reprise.invalid";
  try {
    const u = new URL(next, base);
    return u.origin === base ? `${u.pathname}${u.search}${u.hash}` : "/";
  } catch {
    return "/";
  }
}
