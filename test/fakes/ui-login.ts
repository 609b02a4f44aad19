/**
 * The UI's forms carry the session's anti-forgery token (runner/server/ui/session.ts): a test signs
 * in as a browser does, reading the login form first.
 */
type Fetch = (path: string, init?: RequestInit) => Response | Promise<Response>;

/** The csrf cookie and the login form's hidden field, from GET /login. */
export async function csrfOf(request: Fetch): Promise<{ cookie: string; csrf: string }> {
  const form = await request("/login");
  const cookie = (form.headers.get("set-cookie") ?? "").split(";")[0] as string;
  const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())?.[1];
  if (!cookie.startsWith("reprise_csrf=") || !csrf)
    throw new Error("the login form has no csrf token");
  return { cookie, csrf };
}

/** POST /login as the form does. */
export async function postLogin(request: Fetch, token: string, next = "/"): Promise<Response> {
  const { cookie, csrf } = await csrfOf(request);
  return request("/login", {
    method: "POST",
    body: new URLSearchParams({ token, next, csrf }),
    headers: { "content-type": "application/x-www-form-urlencoded", cookie },
  });
}
