/** How commands get processors: a name -> factory map that main.ts builds once. */
import type { Config } from "../config/config.ts";
import type { Processor } from "./types.ts";

/** A processor and what must be closed after it (mail pools, ...). */
export interface BuiltProcessor {
  processor: Processor;
  close(): void;
}

/** Builds a processor from the validated config; throws ConfigError when it lacks a section. */
export type ProcessorFactory = (config: Config) => Promise<BuiltProcessor>;
