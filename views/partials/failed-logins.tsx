import type { FailedLoginGroup } from "../../src/core/login-log.ts";
import { LocalTime } from "../components/local-time.tsx";
import { typeLabels } from "../components/type-label.tsx";
import { BanButton } from "./ban-button.tsx";

/** protocolDetail: the protocol level beyond the type's label ("MQTT 5" under MQTT: "5"). */
function protocolDetail(label: string, protocol: string | undefined): string {
  if (!protocol) return "";
  return protocol.startsWith(`${label} `) ? protocol.slice(label.length + 1) : protocol;
}

/**
 * FailedLogins: failed logins since start, one line per username, address and reason, with how often
 * and since when: a device retrying a stale password every second is one line. Live: the page's event
 * stream reloads it (app.js tells the server whether it is open, so a refresh keeps it open).
 */
export function FailedLogins({
  groups,
  open = false,
  csrfToken,
}: {
  groups: FailedLoginGroup[];
  open?: boolean;
  /** with it, each row has a one-click Ban button (views/partials/ban-button.tsx) */
  csrfToken?: string;
}) {
  const attempts = groups.reduce((n, g) => n + g.count, 0);
  return (
    <details
      id="failed-logins"
      class="card failed-logins"
      open={open}
      hx-get="/integrations/failed-logins"
      hx-trigger="gatehouse:changed from:body"
      hx-swap="outerHTML"
    >
      <summary
        safe
      >{`Failed logins (${groups.length} source${groups.length === 1 ? "" : "s"}, ${attempts} attempt${attempts === 1 ? "" : "s"})`}</summary>
      {groups.length === 0 ? (
        <p class="muted">None since the appliance started.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Last seen</th>
              <th>Protocol</th>
              <th>Username</th>
              <th>Address</th>
              <th>Reason</th>
              <th class="count">Count</th>
              <th>First seen</th>
              <th>Client id</th>
              {csrfToken ? <th>Ban</th> : ""}
            </tr>
          </thead>
          <tbody>
            {groups.map((g) => (
              <tr>
                <td class="time">
                  <LocalTime at={g.lastAt} />
                </td>
                <td>
                  <span safe>{typeLabels[g.type]}</span>
                  {g.protocol && protocolDetail(typeLabels[g.type], g.protocol) ? (
                    <span class="muted" safe>{` ${protocolDetail(typeLabels[g.type], g.protocol)}`}</span>
                  ) : (
                    ""
                  )}
                </td>
                <td class="clip-cell" safe>
                  {g.username}
                </td>
                <td safe>{g.remote ?? ""}</td>
                <td>{g.reason}</td>
                <td class="count" safe>
                  {String(g.count)}
                </td>
                <td class="time">
                  <LocalTime at={g.firstAt} />
                </td>
                <td class="clip-cell" safe>
                  {g.clientId ?? ""}
                </td>
                {csrfToken ? (
                  <td>
                    <BanButton csrfToken={csrfToken} remote={g.remote} clientId={g.clientId} username={g.username} />
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
