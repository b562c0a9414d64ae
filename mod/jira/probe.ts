/** `agent doctor`'s check of Jira: who the credentials are, and each project the bridge may create in. */
import type { Config } from "../config/config.ts";
import {
  findingsOf,
  limited,
  message,
  type ProbeContext,
  reachable,
  statusOf,
} from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";

/** Jira: who the credentials are, and each project the bridge may create in, with its type. */
export async function checkJira(config: Config, ctx: ProbeContext): Promise<Finding[]> {
  const j = config.jira!;
  const { list, add } = findingsOf("[jira]");
  if (!await reachable(ctx, list, "jira", { url: j.url, urlKey: "url", trust: j.tls })) {
    return list;
  }
  const { JiraTracker } = await import("./client.ts");
  const jira = await JiraTracker.fromConfig(j);
  try {
    const me = await limited(ctx, "Jira", (signal) => jira.whoami(signal));
    add("auth", "pass", `${j.deployment === "cloud" ? "Cloud" : "Server/DC"}: logged in as ${me}`);
  } catch (error) {
    const status = statusOf(error);
    add(
      "auth",
      "fail",
      message(error),
      status === 401 || status === 403
        ? j.auth.kind === "basic"
          ? "check [jira] user and api_token (Cloud: an API token, not the password)"
          : "check [jira] personal_access_token"
        : "is [jira] url the base URL (https://example.atlassian.net or the Server context)?",
    );
    return list;
  }
  const bridge = config.mailBridge;
  const projects = new Set([
    j.project,
    ...(bridge?.projectKeys ?? []),
    ...(bridge?.projects.values() ?? []),
  ]);
  for (const project of projects) {
    try {
      const types = await limited(ctx, "Jira", (signal) => jira.issueTypes(project, signal));
      if (types.some((t) => t.toLowerCase() === j.issueType.toLowerCase())) {
        add(`project ${project}`, "pass", `exists, with issue type "${j.issueType}"`);
      } else {
        add(
          `project ${project}`,
          "fail",
          `has no issue type "${j.issueType}" (it has: ${types.join(", ") || "none"})`,
          "set [jira] issue_type to one of those",
        );
      }
    } catch (error) {
      const status = statusOf(error);
      add(
        `project ${project}`,
        "fail",
        status === 404
          ? `project "${project}" does not exist, or the account cannot see it`
          : message(error),
        status === 404
          ? "check the project key in [jira] project / [mail_bridge], and the account's project permissions"
          : undefined,
      );
    }
  }
  return list;
}
