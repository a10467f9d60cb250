import type { PropsWithChildren } from "@kitajs/html";
import { attr } from "./attr.ts";
import { CsrfField } from "./csrf.tsx";

export interface PostButtonProps {
  action: string;
  csrfToken: string;
  /** hidden fields the action needs (escaped here) */
  fields?: Record<string, string>;
  /** asked before sending (app.js, works on plain forms); name the target in it */
  confirm?: string;
  danger?: boolean;
}

/** PostButton: a one-button form that posts with the CSRF token, for actions in a table row. */
export function PostButton({
  action,
  csrfToken,
  fields = {},
  confirm,
  danger = true,
  children,
}: PropsWithChildren<PostButtonProps>) {
  return (
    <form method="post" action={action} class="inline" data-confirm={confirm ? attr(confirm) : undefined}>
      <CsrfField token={csrfToken} />
      {Object.entries(fields).map(([name, value]) => (
        <input type="hidden" name={name} value={attr(value)} />
      ))}
      <button type="submit" class={danger ? "link danger" : "link"}>
        {children as "safe"}
      </button>
    </form>
  );
}
