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
  /** what devices of each type must do to come in after approval (from the parts) */
  retryNotes?: string[];
}

function timeLeft(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

/** retryingWithinMs: a device that tried this recently is still retrying (mqtt.js retries every second, vrpc too). */
export const retryingWithinMs = 60_000;

/** age: how long ago, in the panel's own words (it refreshes every 2 s). */
function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** RetryNote: smart onboarding works only with clients that retry after a refusal; each part says what its clients do. */
function RetryNote({ notes = [] }: { notes?: string[] }) {
  return (
    <div class="muted note">
      <p>
        A device gets in on its own next attempt after approval, so it must keep trying after being refused; a request
        whose last attempt is long ago has likely given up.
      </p>
      {notes.length ? (
        <ul>
          {notes.map((n) => (
            <li safe>{n}</li>
          ))}
        </ul>
      ) : (
        ""
      )}
    </div>
  );
}

/**
 * OnboardingPanel: the window (open for a chosen time, optionally for some types) and the pending
 * requests with approve / reject, and whether each device is still retrying. Closed, it is one line
 * whose form unfolds when used. Everything shown of a request came from whoever connected: escaped.
 */
export function OnboardingPanel({ status, requests, csrfToken, now, message, retryNotes }: OnboardingPanelProps) {
  const flash = message ? (
    <p class="flash" role="status" safe>
      {message}
    </p>
  ) : (
    ""
  );
  if (!status.open && requests.length === 0)
    return (
      <section class="card onboarding closed" aria-labelledby="onboarding-title">
        <details class="open-onboarding">
          <summary>
            <h2 id="onboarding-title">Smart onboarding</h2>{" "}
            <span class="muted">closed: unknown clients are refused and not listed.</span>{" "}
            <span class="summary-action">Open onboarding…</span>
          </summary>
          <form
            method="post"
            action="/onboarding/open"
            class="open-form"
            hx-post="/onboarding/open"
            hx-target="#onboarding"
            hx-swap="innerHTML"
          >
            <CsrfField token={csrfToken} />
            <label class="minutes">
              <span>Open for</span>
              <input type="number" name="minutes" value="10" min="1" max="60" required class="narrow" />
              <span>minutes, for</span>
            </label>
            <fieldset class="types">
              <legend class="sr-only">Types (none ticked: all types)</legend>
              {integrationTypes.map((t) => (
                <label class="check">
                  <input type="checkbox" name="types" value={t} /> <span>{integrationTypeInfo[t].label}</span>
                </label>
              ))}
              <span class="muted">(none ticked: all types)</span>
            </fieldset>
            <button type="submit">Open onboarding</button>
            <RetryNote notes={retryNotes} />
          </form>
        </details>
        {flash}
      </section>
    );
  return (
    <section class="card onboarding" aria-labelledby="onboarding-title">
      <div class="onboarding-head">
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
            <button type="submit" class="secondary">
              Close onboarding
            </button>
          </form>
        ) : (
          <span class="muted">closed</span>
        )}
      </div>
      {flash}
      <RetryNote notes={retryNotes} />
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
                <th>Last attempt</th>
                <th>Fingerprint</th>
                <th>
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {requests.map((r) => {
                const retrying = now - r.lastSeen < retryingWithinMs;
                return (
                  <tr id={`request-${r.id}`} data-username={attr(r.username)}>
                    <td class="select">
                      <input
                        type="checkbox"
                        name="ids"
                        value={String(r.id)}
                        aria-label={attr(`select ${r.username}`)}
                      />
                    </td>
                    <td>{integrationTypeInfo[r.type].label}</td>
                    <td class="username" safe>
                      {r.username}
                    </td>
                    <td safe>{r.clientId}</td>
                    <td safe>{r.remote}</td>
                    <td class="time">
                      <LocalTime at={r.firstSeen} />
                    </td>
                    <td safe>{String(r.attempts)}</td>
                    <td class="retry">
                      <span safe>{age(now - r.lastSeen)}</span>{" "}
                      {retrying ? (
                        <span class="badge online">retrying</span>
                      ) : (
                        <span class="badge deactivated" title="restart the device after approving">
                          stopped?
                        </span>
                      )}
                    </td>
                    <td>
                      <code class="fingerprint" safe>
                        {r.fingerprint}
                      </code>
                    </td>
                    <td class="actions">
                      <div class="row-actions">
                        <button type="submit" name="ids" value={String(r.id)} class="link">
                          Approve{" "}
                          <span class="sr-only" safe>
                            {r.username}
                          </span>
                        </button>
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
                      </div>
                    </td>
                  </tr>
                );
              })}
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
