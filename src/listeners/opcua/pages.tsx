import { Elysia } from "elysia";
import type { CertificateTrust } from "./trust.ts";
import { AppError } from "../../lib/errors.ts";
import { redirect } from "../../lib/http.ts";
import { CertificatesPage } from "./views/certificates.tsx";
import type { PageKit } from "../../lib/pages.ts";
import { formFields } from "../../lib/bodies.ts";

/** certificatePages: OPC UA client application certificates: rejected ones to trust or remove, trusted ones to revoke. */
export function certificatePages({ adminOf }: PageKit, trust: () => CertificateTrust | undefined) {
  const store = () => {
    const t = trust();
    if (!t) throw new AppError("not_found", "the OPC UA listener is not running");
    return t;
  };
  const thumbprint = (raw: string) => {
    if (!/^[0-9a-f]{40}$/i.test(raw)) throw new AppError("not_found", "certificate not found");
    return raw.toLowerCase();
  };
  return new Elysia({ name: "certificate-pages" })
    .get("/certificates", async ({ request }) => (
      <CertificatesPage
        admin={adminOf(request)}
        certificates={(await trust()?.list()) ?? []}
        running={trust() !== undefined}
      />
    ))
    .post(
      "/certificates/:thumbprint/trust",
      async ({ params }) => {
        await store().trust(thumbprint(params.thumbprint));
        return redirect("/certificates");
      },
      { body: formFields() },
    )
    .post(
      "/certificates/:thumbprint/revoke",
      async ({ params }) => {
        await store().revoke(thumbprint(params.thumbprint));
        return redirect("/certificates");
      },
      { body: formFields() },
    )
    .post(
      "/certificates/:thumbprint/remove",
      async ({ params }) => {
        await store().remove(thumbprint(params.thumbprint));
        return redirect("/certificates");
      },
      { body: formFields() },
    );
}
