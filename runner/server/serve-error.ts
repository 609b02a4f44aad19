/**
 * `reprise serve` refused to start (a port in use, a bad address): apart from serve.ts so that the
 * CLI can recognise it without loading the server (Hono, the API, the UI) for every command.
 */
export class ServeError extends Error {
  override readonly name = "ServeError";
}
