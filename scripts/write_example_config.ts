// Regenerates config.example.ini from the template: deno run -W scripts/write_example_config.ts
import { CONFIG_TEMPLATE } from "../mod/config/template.ts";
await Deno.writeTextFile(new URL("../config.example.ini", import.meta.url), CONFIG_TEMPLATE);
