/** The check-run renderer lives in core (the Action renders with it too); re-exported for the App. */
export * from "../core/report/check-run.js";
