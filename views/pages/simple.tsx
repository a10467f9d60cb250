import type { PropsWithChildren } from "@kitajs/html";
import { Layout, type LayoutProps } from "../layouts/base.tsx";

/** SimplePage: a titled page around one card (forms without JS, confirmations, errors). */
export function SimplePage({ title, admin, active, children }: PropsWithChildren<LayoutProps>) {
  return (
    <Layout title={title} admin={admin} active={active}>
      <section class="card narrow">
        <h1 safe>{title}</h1>
        {children}
      </section>
    </Layout>
  );
}

/**
 * ConfirmPage: without JavaScript there is no confirm(): a destructive action first asks on a page that
 * names its target, then posts again with `confirmed=yes`.
 */
export function ConfirmPage({
  admin,
  title,
  subject,
  consequence,
  action,
  button,
  back,
}: {
  admin: NonNullable<LayoutProps["admin"]>;
  title: string;
  /** what it is done to (a name someone chose: escaped) */
  subject: string;
  /** what happens, after the subject */
  consequence: string;
  action: string;
  button: string;
  back: string;
}) {
  return (
    <SimplePage title={title} admin={admin}>
      <p>
        <strong safe>{subject}</strong> <span safe>{consequence}</span>
      </p>
      <form method="post" action={action}>
        <input type="hidden" name="_csrf" value={admin.csrfToken} />
        <input type="hidden" name="confirmed" value="yes" />
        <div class="row-actions">
          <button type="submit" class="danger" safe>
            {button}
          </button>
          <a href={back}>Cancel</a>
        </div>
      </form>
    </SimplePage>
  );
}
