/**
 * A record looked up by its id (an execution) answers for a repository the caller may not read
 * exactly as an unknown id does: a 403 would tell that the id exists.
 */
import { authorize, type Principal } from "./auth.js";
import { ApiError } from "./errors.js";

export function readableOr404(p: Principal, repo: string, notFound: string): void {
  try {
    authorize(p, repo, "read");
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) throw new ApiError(404, "not_found", notFound);
    throw e;
  }
}
