import type { PropsWithChildren } from "@kitajs/html";

export interface LayoutProps {
  title: string;
  /** signed-in admin, with the navigation of this appliance's parts; absent on the sign-in and setup pages */
  admin?: { username: string; csrfToken: string; nav?: readonly { href: string; label: string }[]; readOnly?: boolean };
  /** the nav entry this page belongs to, by its href */
  active?: string;
}

/** LayoutAdmin: the signed-in admin a page passes on to the layout. */
export type LayoutAdmin = NonNullable<LayoutProps["admin"]>;

// htmx swaps 400/409 bodies too: they carry the form with its inline errors.
// Indicator styles are off so the Content-Security-Policy needs no inline style.
const htmxConfig = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  responseHandling: [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "40[09]", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ],
});

/** Layout: every full page; `hx-headers` sends the CSRF token with every htmx request. */
export function Layout({ title, admin, active, children }: PropsWithChildren<LayoutProps>) {
  return (
    <>
      {"<!doctype html>"}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <meta name="htmx-config" content={htmxConfig} />
          <title safe>{title} · Gatehouse</title>
          <link rel="icon" href="/assets/favicon.svg" type="image/svg+xml" />
          <link rel="stylesheet" href="/assets/app.css" />
          <script src="/assets/htmx.min.js" defer></script>
          <script src="/assets/app.js" defer></script>
        </head>
        <body hx-headers={admin ? JSON.stringify({ "X-CSRF-Token": admin.csrfToken }) : undefined}>
          <header class="top">
            <a class="brand" href="/">
              Gatehouse
            </a>
            {admin ? (
              <nav>
                {(admin.nav ?? []).map((item) => (
                  <a
                    href={item.href}
                    class={active === item.href ? "active" : undefined}
                    aria-current={active === item.href ? "page" : undefined}
                    safe
                  >
                    {item.label}
                  </a>
                ))}
                <form method="post" action="/logout" class="inline">
                  <input type="hidden" name="_csrf" value={admin.csrfToken} />
                  <span class="who" safe>
                    {admin.username}
                  </span>
                  {admin.readOnly ? <span class="badge">read-only</span> : ""}
                  <button type="submit" class="link">
                    Sign out
                  </button>
                </form>
              </nav>
            ) : (
              ""
            )}
          </header>
          <main>{children}</main>
          <div id="toast" class="toast" role="alert" aria-live="assertive" hidden></div>
        </body>
      </html>
    </>
  );
}
