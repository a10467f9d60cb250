import { FieldError } from "../components/field-error.tsx";
import { attr } from "../components/attr.ts";
import { SimplePage } from "./simple.tsx";

export function LoginPage({
  csrfToken,
  error,
  username = "",
  next = "",
}: {
  csrfToken: string;
  error?: string;
  username?: string;
  next?: string;
}) {
  return (
    <SimplePage title="Sign in">
      <form method="post" action="/login" class="stack">
        <input type="hidden" name="_csrf" value={csrfToken} />
        <input type="hidden" name="next" value={attr(next)} />
        <label>
          Username
          <input name="username" value={attr(username)} required autocomplete="username" autofocus />
        </label>
        <label>
          Password
          <input type="password" name="password" required autocomplete="current-password" />
        </label>
        <FieldError message={error} />
        <button type="submit">Sign in</button>
      </form>
    </SimplePage>
  );
}

export function SetupPage({ csrfToken, token, error }: { csrfToken: string; token: string; error?: string }) {
  return (
    <SimplePage title="Create the first admin">
      <p>Choose the administrator's name and password. This link works once.</p>
      <form method="post" action="/setup" class="stack">
        <input type="hidden" name="_csrf" value={csrfToken} />
        <input type="hidden" name="token" value={token} />
        <label>
          Admin name
          <input name="username" value="admin" required maxlength="64" autocomplete="username" />
        </label>
        <label>
          Password (8-256 characters)
          <input type="password" name="password" required minlength="8" maxlength="256" autocomplete="new-password" />
        </label>
        <label>
          Repeat password
          <input type="password" name="confirm" required minlength="8" maxlength="256" autocomplete="new-password" />
        </label>
        <FieldError message={error} />
        <button type="submit">Create admin</button>
      </form>
    </SimplePage>
  );
}

/** CodePage: the second step of a sign-in, for an admin with an authenticator app. */
export function CodePage({ csrfToken, error, next = "" }: { csrfToken: string; error?: string; next?: string }) {
  return (
    <SimplePage title="Enter your code">
      <p>
        Open your authenticator app and type the 6-digit code it shows for Gatehouse, or one of your recovery codes.
      </p>
      <form method="post" action="/login/code" class="stack">
        <input type="hidden" name="_csrf" value={csrfToken} />
        <input type="hidden" name="next" value={attr(next)} />
        <label>
          Code
          <input
            name="code"
            required
            maxlength="32"
            autocomplete="one-time-code"
            inputmode="text"
            spellcheck="false"
            autocapitalize="off"
            autofocus
          />
        </label>
        <FieldError message={error} />
        <button type="submit">Sign in</button>
      </form>
      <p class="muted">
        Lost the phone and the recovery codes? On the device: <code>gatehouse admin reset-2fa NAME</code>.
      </p>
    </SimplePage>
  );
}
