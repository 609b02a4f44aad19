/**
 * A local OpenID Connect issuer over real HTTP, as GitHub Actions' is: a discovery document, a
 * JWKS, and tokens signed with its own RS256 key carrying GitHub's claims (`repository`, `sub`).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

export interface OidcIssuer {
  issuer: string;
  /** A token for `repository` (OWNER/NAME); `overrides` change any claim or the signing key. */
  token(
    repository: string,
    overrides?: {
      audience?: string;
      issuer?: string;
      expiresIn?: string;
      foreignKey?: boolean;
      /** GitHub's other claims (`ref`, `sha`, `environment`, `job_workflow_ref`...), replacing the defaults. */
      claims?: Record<string, unknown>;
    },
  ): Promise<string>;
  /** JWKS requests served so far (the server caches keys: it should not ask per request). */
  jwksRequests(): number;
  /**
   * The runner's token endpoint, as ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN give it to a job: a GET
   * with `&audience=` and the request token as bearer answers `{ value: <JWT for repository> }`.
   */
  actionsEndpoint(repository: string): { url: string; token: string };
  close(): Promise<void>;
}

export async function startOidcIssuer(audience: string): Promise<OidcIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const foreign = await generateKeyPair("RS256");
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "test-key", alg: "RS256", use: "sig" };
  let jwks = 0;
  let issuer = "";
  const requestTokens = new Map<string, string>();
  const sign = (repository: string, o: Parameters<OidcIssuer["token"]>[1] = {}) =>
    new SignJWT({
      repository,
      repository_owner: repository.split("/")[0],
      ref: "refs/heads/main",
      ...o.claims,
    })
      .setProtectedHeader({ alg: "RS256", kid: "test-key" })
      .setIssuer(o.issuer ?? issuer)
      .setAudience(o.audience ?? audience)
      .setSubject(`repo:${repository}:ref:refs/heads/main`)
      .setIssuedAt()
      .setExpirationTime(o.expiresIn ?? "5m")
      .sign(o.foreignKey ? foreign.privateKey : privateKey);
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/actions-token") {
      const repository = requestTokens.get(
        (req.headers.authorization ?? "").replace(/^Bearer /, ""),
      );
      if (!repository) {
        res.statusCode = 401;
        res.end(JSON.stringify({ message: "bad request token" }));
        return;
      }
      void sign(repository, { audience: url.searchParams.get("audience") ?? audience }).then(
        (value) => {
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ value }));
        },
      );
      return;
    }
    if (req.url === "/.well-known/openid-configuration") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/.well-known/jwks` }));
    } else if (req.url === "/.well-known/jwks") {
      jwks++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    token: (repository, o = {}) => sign(repository, o),
    jwksRequests: () => jwks,
    actionsEndpoint: (repository) => {
      const token = `req-${requestTokens.size + 1}`;
      requestTokens.set(token, repository);
      return { url: `${issuer}/actions-token?api-version=2.0`, token };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
