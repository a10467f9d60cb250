import type { RefusedAnnouncement } from "../../../core/announcements.ts";
import type { VrpcAgentInfo, VrpcClassInfo } from "../types.ts";
import { attr } from "../../../../views/components/attr.ts";
import { CsrfField } from "../../../../views/components/csrf.tsx";
import { LocalTime } from "../../../../views/components/local-time.tsx";
import { PostButton } from "../../../../views/components/post-button.tsx";
import { Layout, type LayoutAdmin } from "../../../../views/layouts/base.tsx";

export interface AgentsProps {
  agents: VrpcAgentInfo[];
  csrfToken: string;
  running: boolean;
  /** announcements the topic rules refused, last per integration */
  refused?: RefusedAnnouncement[];
}

/** call forms shown per class at most (instances x member functions can be large; the API calls the rest) */
const maxForms = 200;

/** agentPath: `/agents/<domain>/<agent>` with both parts encoded. */
export const agentPath = (a: { domain: string; agent: string }) =>
  `/agents/${encodeURIComponent(a.domain)}/${encodeURIComponent(a.agent)}`;

/** CallResult: what a call from the page returned, or why it failed. */
export function CallResult({ ok, text }: { ok: boolean; text: string }) {
  return (
    <div class={ok ? "call-result ok" : "call-result error"} role="status">
      <strong>{ok ? "Result" : "Failed"}</strong>
      <pre safe>{text}</pre>
    </div>
  );
}

function CallForm({
  a,
  className,
  fn,
  instance,
  csrfToken,
}: {
  a: VrpcAgentInfo;
  className: string;
  fn: string;
  instance?: string;
  csrfToken: string;
}) {
  const id = `call-${a.domain}-${a.agent}-${className}-${instance ?? "static"}-${fn}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return (
    <form
      method="post"
      action="/agents/call"
      class="call"
      hx-post="/agents/call"
      hx-target={`#${id}-result`}
      hx-swap="innerHTML"
    >
      <CsrfField token={csrfToken} />
      <input type="hidden" name="domain" value={attr(a.domain)} />
      <input type="hidden" name="agent" value={attr(a.agent)} />
      <input type="hidden" name="className" value={attr(className)} />
      <input type="hidden" name="functionName" value={attr(fn)} />
      {instance !== undefined ? <input type="hidden" name="instance" value={attr(instance)} /> : ""}
      <label for={`${id}-args`}>
        <code safe>{instance !== undefined ? `${instance}.${fn}` : `${className}.${fn}`}</code> arguments (JSON array)
      </label>
      <input id={`${id}-args`} name="args" value="[]" maxlength="16384" />
      <button type="submit">Call</button>
      <div id={`${id}-result`} aria-live="polite"></div>
    </form>
  );
}

/** ClassFunctions: an online agent's functions as call forms; an offline agent's as names only (nothing answers). */
function ClassFunctions({ a, c, csrfToken }: { a: VrpcAgentInfo; c: VrpcClassInfo; csrfToken: string }) {
  const calls = [
    ...c.staticFunctions.map((fn) => ({ fn, instance: undefined as string | undefined })),
    ...c.instances.flatMap((instance) =>
      c.memberFunctions.map((fn) => ({ fn, instance: instance as string | undefined })),
    ),
  ];
  if (a.status !== "online") {
    return (
      <p class="muted">
        <span
          safe
        >{`Offline: nothing to call. Static: ${c.staticFunctions.join(", ") || "none"}. Member: ${c.memberFunctions.join(", ") || "none"}.`}</span>
      </p>
    );
  }
  return (
    <>
      {calls.slice(0, maxForms).map(({ fn, instance }) => (
        <CallForm a={a} className={c.className} fn={fn} instance={instance} csrfToken={csrfToken} />
      ))}
      {calls.length > maxForms ? (
        <p class="muted" safe>{`${calls.length - maxForms} more functions not shown; call them through the API.`}</p>
      ) : (
        ""
      )}
    </>
  );
}

/** RefusedList: agents whose announcements the topic rules refused: online, yet absent from the list above. */
function RefusedList({ refused }: { refused: RefusedAnnouncement[] }) {
  if (refused.length === 0) return "";
  return (
    <section class="card refused" aria-label="Refused announcements">
      <h2>Refused announcements</h2>
      <p class="muted">
        These integrations tried to announce an agent and were refused, so the agent is not listed above.
      </p>
      <ul>
        {refused.map((r) => (
          <li>
            <a href={`/integrations?q=${encodeURIComponent(r.username)}`} safe>
              {r.username}
            </a>{" "}
            announced the agent <code safe>{r.agent}</code>:{" "}
            <span class="field-error" safe>
              {r.reason}
            </span>{" "}
            <span class="muted">
              (<LocalTime at={r.at} />
              {r.count > 1 ? `, ${r.count} times` : ""})
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** AgentList: every known agent with its classes and functions; refreshed in place while the page is open. */
export function AgentList({ agents, csrfToken, running, refused = [] }: AgentsProps) {
  if (!running) return <p class="flash">The VRPC listener is not running.</p>;
  return (
    <>
      <RefusedList refused={refused} />
      {agents.length === 0 ? <p class="muted">No VRPC agent has announced itself on the broker yet.</p> : ""}
      {agents.map((a) => (
        <section class="agent" data-agent={attr(`${a.domain}/${a.agent}`)}>
          <h2>
            <span safe>{`${a.domain}/${a.agent}`}</span> <span class={`badge ${a.status}`}>{a.status}</span>
          </h2>
          <p class="muted">
            <span safe>{`host ${a.hostname ?? "?"} · vrpc ${a.version ?? "?"} · last seen `}</span>
            {a.status === "online" ? "now" : a.lastSeenAt ? <LocalTime at={a.lastSeenAt} /> : "before this start"}
          </p>
          {a.status === "offline" ? (
            <PostButton
              action={`${agentPath(a)}/remove`}
              csrfToken={csrfToken}
              confirm={`Remove the agent "${a.domain}/${a.agent}"? Its retained announcements are cleared; it reappears when it announces itself again.`}
            >
              Remove <span safe>{`${a.domain}/${a.agent}`}</span>
            </PostButton>
          ) : (
            ""
          )}
          {a.classes.map((c) => (
            <details class="class">
              <summary>
                <code safe>{c.className}</code>{" "}
                <span
                  class="muted"
                  safe
                >{`${c.staticFunctions.length} static, ${c.memberFunctions.length} member functions, ${c.instances.length} instances`}</span>
              </summary>
              <ClassFunctions a={a} c={c} csrfToken={csrfToken} />
            </details>
          ))}
        </section>
      ))}
    </>
  );
}

/** RemoveAgentConfirm: without JS there is no confirm(): the first POST only asks, naming the agent. */
export function RemoveAgentConfirm({ a, csrfToken }: { a: { domain: string; agent: string }; csrfToken: string }) {
  return (
    <>
      <p>
        The agent <strong safe>{`${a.domain}/${a.agent}`}</strong> is removed from this list and its retained
        announcements are cleared; it reappears when it announces itself again.
      </p>
      <form method="post" action={`${agentPath(a)}/remove`}>
        <CsrfField token={csrfToken} />
        <input type="hidden" name="confirmed" value="yes" />
        <button type="submit" class="danger">
          Remove
        </button>{" "}
        <a href="/agents">Cancel</a>
      </form>
    </>
  );
}

/** AgentsPage: the VRPC agents on the broker (Heisenware's edge connectors), live, callable. */
export function AgentsPage({ admin, result, ...props }: AgentsProps & { admin: LayoutAdmin; result?: JSX.Element }) {
  return (
    <Layout title="VRPC agents" admin={admin} active="/agents">
      <h1>VRPC agents</h1>
      <p class="muted">
        Agents announce themselves on the broker (retained <code>__agentInfo__</code> and <code>__classInfo__</code>{" "}
        topics); the appliance reads them in process and can call their functions. The list refreshes by itself.
      </p>
      {/* result is rendered JSX from CallResult, already escaped */}
      {(result ?? "") as "safe"}
      <div
        id="agent-list"
        hx-get="/agents/list"
        hx-trigger="every 2s"
        hx-swap="innerHTML"
        data-keep-while-editing="true"
      >
        <AgentList {...props} />
      </div>
    </Layout>
  );
}
