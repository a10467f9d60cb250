import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  // a part's own tables live in its folder (one folder per part); their migrations are the house's
  schema: ["./src/db/schema.ts", "./src/connectors/uplink/schema.ts"],
  out: "./drizzle",
});
