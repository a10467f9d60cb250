import type { VrpcAgentInfo } from "../../src/core/vrpc.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { LocalTime } from "../components/local-time.tsx";
import { Layout } from "../layouts/base.tsx";

export interface AgentsProps {
  agents: VrpcAgentInfo[];
  csrfToken: string;
  running: boolean;
}

/** CallResult: what a call from the page returned, or why it failed. */
export function CallResult({ ok, text }: { ok: boolean; text: string }) {
  return (
    <div class={ok ? "call-result ok" : "call-result error"} role="status">
      <strong>{ok ? "Result" : "Failed"}</strong>
      <pre safe>{text}</pre>
    </div>
  );
}

function CallForm({ a, className, fn, instance, csrfToken }: { a: VrpcAgentInfo; className: string; fn: string; instance?: string; csrfToken: string }) {
  const id = `call-${a.domain}-${a.agent}-${className}-${instance ?? "static"}-${fn}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return (
    <form method="post" action="/agents/call" class="call" hx-post="/agents/call" hx-target={`#${id}-result`} hx-swap="innerHTML">
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

/** AgentList: every known agent with its classes and functions; refreshed in place while the page is open. */
export function AgentList({ agents, csrfToken, running }: AgentsProps) {
  if (!running) return <p class="flash">The VRPC listener is not running.</p>;
  if (agents.length === 0) return <p class="muted">No VRPC agent has announced itself on the broker yet.</p>;
  return (
    <>
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
            <form method="post" action={`/agents/${encodeURIComponent(a.domain)}/${encodeURIComponent(a.agent)}/remove`} class="inline">
              <CsrfField token={csrfToken} />
              <button type="submit" class="link danger">
                Remove <span safe>{`${a.domain}/${a.agent}`}</span>
              </button>
            </form>
          ) : (
            ""
          )}
          {a.classes.map((c) => (
            <details class="class">
              <summary>
                <code safe>{c.className}</code>{" "}
                <span class="muted" safe>{`${c.staticFunctions.length} static, ${c.memberFunctions.length} member functions, ${c.instances.length} instances`}</span>
              </summary>
              {c.staticFunctions.map((fn) => (
                <CallForm a={a} className={c.className} fn={fn} csrfToken={csrfToken} />
              ))}
              {c.instances.map((instance) => c.memberFunctions.map((fn) => <CallForm a={a} className={c.className} fn={fn} instance={instance} csrfToken={csrfToken} />))}
            </details>
          ))}
        </section>
      ))}
    </>
  );
}

/** AgentsPage: the VRPC agents on the broker (Heisenware's edge connectors), live, callable. */
export function AgentsPage({ admin, result, ...props }: AgentsProps & { admin: { username: string; csrfToken: string }; result?: JSX.Element }) {
  return (
    <Layout title="VRPC agents" admin={admin} active="agents">
      <h1>VRPC agents</h1>
      <p class="muted">
        Agents announce themselves on the broker (retained <code>__agentInfo__</code> and <code>__classInfo__</code> topics); the appliance
        reads them in process and can call their functions. The list refreshes by itself.
      </p>
      {/* result is rendered JSX from CallResult, already escaped */}
      {(result ?? "") as "safe"}
      <div id="agent-list" hx-get="/agents/list" hx-trigger="every 2s" hx-swap="innerHTML" data-keep-while-editing="true">
        <AgentList {...props} />
      </div>
    </Layout>
  );
}
