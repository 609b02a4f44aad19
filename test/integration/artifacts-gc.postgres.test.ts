import { describe } from "vitest";
import { POSTGRES_AVAILABLE } from "../setup/stores.js";
import { artifactsGcContract } from "./artifacts-gc-contract.js";

// Skipped (and reported as skipped) only when DATABASE_URL is unset; .ci/run always sets it.
describe.skipIf(!POSTGRES_AVAILABLE)("Artifact gc on Postgres", () =>
  artifactsGcContract("postgres"),
);
