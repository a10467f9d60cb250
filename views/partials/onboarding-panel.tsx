import type { OnboardingRequest, OnboardingStatus } from "../../src/core/onboarding.ts";
import { integrationTypeInfo, integrationTypes } from "../../src/core/types.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { LocalTime } from "../components/local-time.tsx";

export interface OnboardingPanelProps {
  status: OnboardingStatus;
  requests: OnboardingRequest[];
  csrfToken: string;
  now: number;
  /** what the last action did, shown once */
  message?: string;
}

function timeLeft(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

/**
 * OnboardingPanel: the window (open for a chosen time, optionally for some types) and the pending
 * requests with approve / reject. Everything shown of a request came from whoever connected: escaped.
 */
export function OnboardingPanel({ status, requests, csrfToken, now, message }: OnboardingPanelProps) {
  return (
    <section class="card onboarding" aria-labelledby="onboarding-title">
      <h2 id="onboarding-title">
        Smart onboarding{" "}
        {status.pending > 0 ? (
          <span class="badge count" title="pending requests" safe>
            {String(status.pending)}
          </span>
        ) : (
          ""
        )}
      </h2>
      {message ? (
        <p class="flash" role="status" safe>
          {message}
        </p>
      ) : (
        ""
      )}
      {status.open ? (
        <form
          method="post"
          action="/onboarding/close"
          class="inline"
          hx-post="/onboarding/close"
          hx-target="#onboarding"
          hx-swap="innerHTML"
        >
          <CsrfField token={csrfToken} />
          <span class="window-open" safe>
            {`Open for ${timeLeft((status.openUntil ?? now) - now)} more · ${status.types ? status.types.map((t) => integrationTypeInfo[t].label).join(", ") : "all types"}`}
          </span>{" "}
          <button type="submit">Close onboarding</button>
        </form>
      ) : (
        <form
          method="post"
          action="/onboarding/open"
          class="inline"
          hx-post="/onboarding/open"
          hx-target="#onboarding"
          hx-swap="innerHTML"
        >
          <CsrfField token={csrfToken} />
          <span class="muted">Closed. Unknown clients are refused and not listed. </span>
          <label>
            Open for <input type="number" name="minutes" value="10" min="1" max="60" required class="narrow" /> minutes
          </label>
          {integrationTypes.map((t) => (
            <label class="check">
              <input type="checkbox" name="types" value={t} /> <span>{integrationTypeInfo[t].label}</span>
            </label>
          ))}
          <span class="muted"> (none ticked: all types) </span>
          <button type="submit">Open onboarding</button>
        </form>
      )}
      {status.open && requests.length === 0 ? (
        <p class="muted">No requests yet: a client that logs in with a username we do not know appears here.</p>
      ) : (
        ""
      )}
      {status.refused > 0 ? (
        <p
          class="muted"
          safe
        >{`${status.refused} further attempts were not listed (the list is full, or an address sent too many).`}</p>
      ) : (
        ""
      )}
      {requests.length > 0 ? (
        <form
          method="post"
          action="/onboarding/approve"
          hx-post="/onboarding/approve"
          hx-target="#onboarding"
          hx-swap="innerHTML"
        >
          <CsrfField token={csrfToken} />
          <table class="requests">
            <thead>
              <tr>
                <th>
                  <span class="sr-only">Select</span>
                </th>
                <th>Type</th>
                <th>Username</th>
                <th>Client id / application</th>
                <th>Address</th>
                <th>First seen</th>
                <th>Attempts</th>
                <th>Fingerprint</th>
                <th>
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {requests.map((r) => (
                <tr id={`request-${r.id}`} data-username={attr(r.username)}>
                  <td>
                    <input type="checkbox" name="ids" value={String(r.id)} aria-label={attr(`select ${r.username}`)} />
                  </td>
                  <td>{integrationTypeInfo[r.type].label}</td>
                  <td class="username" safe>
                    {r.username}
                  </td>
                  <td safe>{r.clientId}</td>
                  <td safe>{r.remote}</td>
                  <td>
                    <LocalTime at={r.firstSeen} />
                  </td>
                  <td safe>{String(r.attempts)}</td>
                  <td>
                    <code class="fingerprint" safe>
                      {r.fingerprint}
                    </code>
                  </td>
                  <td class="actions">
                    <button type="submit" name="ids" value={String(r.id)} class="link">
                      Approve{" "}
                      <span class="sr-only" safe>
                        {r.username}
                      </span>
                    </button>{" "}
                    <button
                      type="submit"
                      formaction={`/onboarding/${r.id}/reject`}
                      hx-post={`/onboarding/${r.id}/reject`}
                      hx-target="#onboarding"
                      hx-swap="innerHTML"
                      class="link danger"
                    >
                      Reject{" "}
                      <span class="sr-only" safe>
                        {r.username}
                      </span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <details class="approve-settings">
            <summary>Approve selected with a description and topic permissions</summary>
            <label>
              Description <input name="description" maxlength="1024" />
            </label>
            <label>
              May publish to <input name="publishAcl" value="#" maxlength="4096" />
            </label>
            <label>
              May subscribe to <input name="subscribeAcl" value="#" maxlength="4096" />
            </label>
            <button type="submit">Approve selected</button>
          </details>
        </form>
      ) : (
        ""
      )}
    </section>
  );
}
