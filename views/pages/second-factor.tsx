import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

export interface SecondFactorPageProps {
  admin: LayoutAdmin;
  enabled: boolean;
  recoveryLeft: number;
  /** while setting up: the QR code (SVG made on the server from the otpauth URI) and the key to type by hand */
  enrolment?: { svg: string; secret: string };
  /** recovery codes just made: shown on this answer only */
  recoveryCodes?: string[];
  errors?: Record<string, string>;
  done?: string;
}

/** SecondFactorPage: the signed-in admin's own authenticator app (TOTP) and recovery codes. */
export function SecondFactorPage({
  admin,
  enabled,
  recoveryLeft,
  enrolment,
  recoveryCodes,
  errors = {},
  done,
}: SecondFactorPageProps) {
  return (
    <Layout title="Two-step sign-in" admin={admin} active="/settings">
      <h1>Two-step sign-in</h1>
      <section class="card narrow">
        {done ? (
          <p class="flash" role="status" safe>
            {done}
          </p>
        ) : (
          ""
        )}
        {recoveryCodes ? (
          <div class="secret" role="status">
            <h2>Your recovery codes</h2>
            <p>
              Each works once, instead of a code from the app (a lost or broken phone). Keep them somewhere safe and
              apart from the phone: this page shows them once, only hashes are stored.
            </p>
            <ul class="codes">
              {recoveryCodes.map((c) => (
                <li>
                  <code safe>{c}</code>
                </li>
              ))}
            </ul>
            <button type="button" class="copy" data-copy={recoveryCodes.join("\n")}>
              Copy all
            </button>
          </div>
        ) : (
          ""
        )}
        {enabled ? (
          <>
            <p>
              <strong>On.</strong> Signing in as <strong safe>{admin.username}</strong> asks for a code from your
              authenticator app after the password. {recoveryLeft} recovery code{recoveryLeft === 1 ? "" : "s"} left.
            </p>
            <form method="post" action="/settings/2fa/disable" class="stack">
              <h2>Turn it off</h2>
              <CsrfField token={admin.csrfToken} />
              <label>
                A code from the app (or a recovery code)
                <input name="code" required maxlength="32" autocomplete="one-time-code" spellcheck="false" />
                <FieldError message={errors.code} />
              </label>
              <button type="submit" class="danger">
                Turn off two-step sign-in
              </button>
            </form>
          </>
        ) : enrolment ? (
          <form method="post" action="/settings/2fa/confirm" class="stack">
            <h2>Scan this code with your authenticator app</h2>
            <div class="qr" role="img" aria-label="QR code to add Gatehouse to an authenticator app">
              {enrolment.svg as "safe"}
            </div>
            <p>
              Or type this key into the app (time-based, 6 digits, 30 seconds):{" "}
              <code class="secret-value" safe>
                {enrolment.secret}
              </code>
            </p>
            <CsrfField token={admin.csrfToken} />
            <label>
              The code the app shows now
              <input
                name="code"
                required
                inputmode="numeric"
                pattern="[0-9 ]{6,7}"
                maxlength="7"
                autocomplete="one-time-code"
              />
              <FieldError message={errors.code} />
            </label>
            <button type="submit">Turn on two-step sign-in</button>
          </form>
        ) : (
          <form method="post" action="/settings/2fa/start" class="stack">
            <p>
              <strong>Off.</strong> With two-step sign-in, a stolen password alone does not open this page: it asks for
              a code from an authenticator app on your phone (any app for time-based codes, RFC 6238).
            </p>
            <FieldError message={errors.code} />
            <CsrfField token={admin.csrfToken} />
            <button type="submit">Set up two-step sign-in</button>
          </form>
        )}
        <p class="muted">
          Lost the phone and the recovery codes? On the device: <code>gatehouse admin reset-2fa NAME</code>.
        </p>
        <p>
          <a href="/settings#admins">Back to settings</a>
        </p>
      </section>
    </Layout>
  );
}
