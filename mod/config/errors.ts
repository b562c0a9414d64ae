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

function describeWhere(where: ConfigError["where"]): string {
  const place = where.line ? `${where.file}:${where.line}` : where.file;
  if (!where.section) return place;
  return `${place} ${where.key ? `${where.section}.${where.key}` : `[${where.section}]`}`;
}
