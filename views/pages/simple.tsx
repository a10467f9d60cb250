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
