import { defineConfig } from "drizzle-kit";

// `npx drizzle-kit generate` writes a new migration to db/migrations from db/schema.ts.
export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
});
