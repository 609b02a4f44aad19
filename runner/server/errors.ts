/**
 * API errors (docs/design.md section 9): `{ "error": { "code", "message" } }` with the status that
 * applies. The runner's own refusals (`RequestError`) map to theirs.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { LeaseLostError, NotFoundError } from "../../db/errors.js";
import { RequestError } from "../service.js";

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/** The answer to an error thrown by a route; anything unexpected is a 500 that says little. */
export function onError(e: Error, c: Context, log: (e: Error) => void) {
  if (e instanceof ApiError) return c.json(errorBody(e.code, e.message), e.status);
  if (e instanceof RequestError) return c.json(errorBody(e.code, e.message), e.status);
  if (e instanceof NotFoundError) return c.json(errorBody("not_found", e.message), 404);
  if (e instanceof LeaseLostError) return c.json(errorBody("conflict", e.message), 409);
  const status = (e as { status?: unknown }).status;
  if (typeof status === "number" && status >= 400 && status < 500)
    return c.json(errorBody("bad_request", e.message), status as ContentfulStatusCode);
  log(e);
  return c.json(errorBody("internal", "internal error; the server log says more"), 500);
}
