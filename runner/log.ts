/**
 * The service's logger: pino, JSON lines on stderr (stdout stays for commands' machine output),
 * at LOG_LEVEL. One per process, passed down; this makes the default where none was given.
 */
import { type Logger, pino } from "pino";
import type { Config } from "./config.js";

export function defaultLog(config: Pick<Config, "logLevel">): Logger {
  return pino({ level: config.logLevel, name: "reprise" }, pino.destination({ fd: 2, sync: true }));
}
