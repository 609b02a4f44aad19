/**
 * What every route file of the API (api.ts, artifacts-api.ts) shares: the Hono environment, the
 * error document and response declarations of the OpenAPI document, and the path parameters.
 */
import { z } from "@hono/zod-openapi";
import type { Principal } from "./auth.js";

export type Env = { Variables: { principal: Principal } };

export const Json = z.any().openapi({ type: "object" });
export const ErrorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .openapi("Error");
export const errorResponse = {
  description: "an error: what to fix is in its message",
  content: { "application/json": { schema: ErrorSchema } },
};
export const errors = {
  400: errorResponse,
  401: errorResponse,
  403: errorResponse,
  404: errorResponse,
  409: errorResponse,
  413: errorResponse,
  422: errorResponse,
} as const;
export const jsonResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: Json } },
});
export const ok = <S extends 200 | 201>(description: string, status: S) =>
  ({ [status]: jsonResponse(description), ...errors }) as {
    [K in S]: ReturnType<typeof jsonResponse>;
  } & typeof errors;

/**
 * A name in a path: Postgres text cannot hold a NUL byte, so one with it names nothing and is
 * refused (400) before it reaches a query (where it would be a 500).
 */
export const PathName = z
  .string()
  .min(1)
  .regex(/^[^\0]*$/, "must not contain a NUL byte");

export const RepoParam = z.object({
  repo: PathName.openapi({
    param: { name: "repo", in: "path" },
    example: "github.com%2Facme%2Fml",
    description: "the repository key, URL-encoded",
  }),
});
export const ExecParam = z.object({
  id: PathName.openapi({ param: { name: "id", in: "path" } }),
});
