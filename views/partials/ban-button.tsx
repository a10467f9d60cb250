import type { BanKind } from "../../src/core/bans.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { banKindLabels } from "../pages/bans.tsx";

/**
 * BanButton: one click from a failed login to a ban (an hour, of the address if it has one, else the
 * client id, else the username); the select picks another target. Lands on the Bans page.
 */
export function BanButton({
  csrfToken,
  remote,
  clientId,
  username,
}: {
  csrfToken: string;
  remote?: string;
  clientId?: string;
  username: string;
}) {
  const targets: [BanKind, string][] = [];
  if (remote && remote !== "local" && remote !== "unknown") targets.push(["address", remote]);
  if (clientId) targets.push(["clientId", clientId]);
  if (username) targets.push(["username", username]);
  if (targets.length === 0) return "";
  return (
    <form method="post" action="/bans" class="inline ban-button">
      <CsrfField token={csrfToken} />
      <input type="hidden" name="minutes" value="60" />
      <select name="target" aria-label="What to ban">
        {targets.map(([k, v]) => (
          <option value={attr(`${k}:${v}`)} safe>
            {`${banKindLabels[k].toLowerCase()} ${v.length > 40 ? `${v.slice(0, 40)}…` : v}`}
          </option>
        ))}
      </select>
      <button type="submit" class="link danger">
        Ban 1 h
      </button>
    </form>
  );
}
