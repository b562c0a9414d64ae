/** A configuration problem, named as `file:line section.key: what is wrong`. */
export class ConfigError extends Error {
  constructor(
    readonly where: { file: string; line?: number; section?: string; key?: string },
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${describeWhere(where)}: ${reason}`, options);
    this.name = "ConfigError";
  }
}

/** Every problem of a config file at once (`agent config check` names them all). */
export class ConfigErrors extends ConfigError {
  constructor(readonly problems: ConfigError[]) {
    super(
      { file: problems[0]!.where.file },
      `${problems.length} problems:\n${problems.map((p) => `  ${p.message}`).join("\n")}`,
    );
    this.name = "ConfigErrors";
  }
}

function describeWhere(where: ConfigError["where"]): string {
  const place = where.line ? `${where.file}:${where.line}` : where.file;
  if (!where.section) return place;
  return `${place} ${where.key ? `${where.section}.${where.key}` : `[${where.section}]`}`;
}
