import type { FailedLogin } from "../../src/core/login-log.ts";
import { LocalTime } from "../components/local-time.tsx";
import { BanButton } from "./ban-button.tsx";

/**
 * FailedLogins: the last failed logins, newest first. Live: the page's event stream reloads it (app.js
 * tells the server whether it is open, so a refresh keeps it open).
 */
export function FailedLogins({
  entries,
  open = false,
  csrfToken,
}: {
  entries: FailedLogin[];
  open?: boolean;
  /** with it, each row has a one-click Ban button (views/partials/ban-button.tsx) */
  csrfToken?: string;
}) {
  return (
    <details
      id="failed-logins"
      class="card failed-logins"
      open={open}
      hx-get="/integrations/failed-logins"
      hx-trigger="gatehouse:changed from:body"
      hx-swap="outerHTML"
    >
      <summary>Recent failed logins ({entries.length})</summary>
      {entries.length === 0 ? (
        <p class="muted">None since the appliance started.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Time</th>
              <th>Protocol</th>
              <th>Username</th>
              <th>Client id</th>
              <th>Address</th>
              <th>Reason</th>
              {csrfToken ? <th>Ban</th> : ""}
            </tr>
          </thead>
          <tbody>
            {entries.map((f) => (
              <tr>
                <td>
                  <LocalTime at={f.at} />
                </td>
                <td safe>{f.protocol ?? f.type}</td>
                <td safe>{f.username}</td>
                <td safe>{f.clientId ?? ""}</td>
                <td safe>{f.remote ?? ""}</td>
                <td>{f.reason}</td>
                {csrfToken ? (
                  <td>
                    <BanButton csrfToken={csrfToken} remote={f.remote} clientId={f.clientId} username={f.username} />
                  </td>
                ) : (
                  ""
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </details>
  );
}
