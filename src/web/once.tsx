import { Elysia } from "elysia";
import { randomToken } from "../lib/ids.ts";
import { htmlResponse, redirect } from "../lib/http.ts";
import { Secret } from "../../views/components/secret.tsx";
import { SimplePage } from "../../views/pages/simple.tsx";
import { adminOf } from "./auth.tsx";

/** OneTimeSecret: what a POST produced and its answer page shows once. */
export interface OneTimeSecret {
  title: string;
  /** what it belongs to (an integration's username, a token's name) */
  subject: string;
  label: string;
  secret: string;
  back: { href: string; text: string };
  more?: { href: string; text: string };
}

/**
 * OneTimeSecrets: post/redirect/get for secrets. A POST that makes a password or a token keeps it
 * here and redirects to `/once/<key>`; that page shows it once, to the admin session that made it,
 * within ten minutes. A reload shows "already shown" instead of repeating the action (a second
 * reset would silently break the password the admin just copied). Memory only: a restart forgets.
 */
export class OneTimeSecrets {
  #items = new Map<string, { owner: string; value: OneTimeSecret; expires: number }>();
  constructor(
    private readonly ttlMs = 10 * 60_000,
    private readonly max = 200,
  ) {}

  put(owner: string, value: OneTimeSecret): string {
    const now = Date.now();
    for (const [k, v] of this.#items) if (v.expires <= now || this.#items.size >= this.max) this.#items.delete(k);
    const key = randomToken();
    this.#items.set(key, { owner, value, expires: now + this.ttlMs });
    return key;
  }

  take(owner: string, key: string): OneTimeSecret | undefined {
    const item = this.#items.get(key);
    if (!item || item.owner !== owner) return undefined;
    this.#items.delete(key);
    return item.expires > Date.now() ? item.value : undefined;
  }

  /** answer: the redirect a no-JS POST returns. */
  answer(request: Request, value: OneTimeSecret): Response {
    return redirect(`/once/${this.put(adminOf(request).csrfToken, value)}`);
  }
}

/** oneTimePages: `/once/:key`, the page a secret-making POST redirects to. */
export function oneTimePages(secrets: OneTimeSecrets) {
  return new Elysia({ name: "one-time-pages" }).get("/once/:key", ({ request, params }) => {
    const admin = adminOf(request);
    const shown = secrets.take(admin.csrfToken, params.key);
    if (!shown) {
      return htmlResponse(
        <SimplePage title="Already shown" admin={admin}>
          <p>This page showed a password or token once and will not show it again; nothing was changed now.</p>
          <p>
            If it was not copied, reset the password (or create a new token) and copy it from the page that follows.
          </p>
          <p>
            <a href="/integrations">Back to integrations</a>
          </p>
        </SimplePage>,
        410,
      );
    }
    return htmlResponse(
      <SimplePage title={shown.title} admin={admin}>
        <p>
          <strong safe>{shown.subject}</strong>
        </p>
        <Secret label={shown.label} value={shown.secret} />
        <p>
          {shown.more ? (
            <>
              <a href={shown.more.href} safe>
                {shown.more.text}
              </a>
              {" · "}
            </>
          ) : (
            ""
          )}
          <a href={shown.back.href} safe>
            {shown.back.text}
          </a>
        </p>
      </SimplePage>,
      200,
      { "cache-control": "no-store" },
    );
  });
}
