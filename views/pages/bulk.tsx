import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import type { LayoutAdmin } from "../layouts/base.tsx";
import { BackField } from "./integration-edit.tsx";
import { PermissionFields } from "../partials/integration-row.tsx";
import { SimplePage } from "./simple.tsx";

/** BulkSelection: what a bulk action applies to: the ids ticked, or every integration a filter matches. */
export interface BulkSelection {
  all: boolean;
  ids: number[];
  /** the filter `all` means (q, type, status) */
  filter: Record<string, string>;
}

/** SelectionFields: the selection again as hidden fields, so the confirming form posts the same. */
function SelectionFields({ selection }: { selection: BulkSelection }) {
  return (
    <>
      {selection.all ? (
        <>
          <input type="hidden" name="all" value="1" />
          {Object.entries(selection.filter).map(([name, value]) => (
            <input type="hidden" name={name} value={attr(value)} />
          ))}
        </>
      ) : (
        selection.ids.map((id) => <input type="hidden" name="ids" value={String(id)} />)
      )}
    </>
  );
}

/**
 * BulkConfirmPage: one confirmation for a bulk change, naming how many integrations (and the first of
 * them); the permissions action asks for the lists here. The answer posts the same selection with
 * `confirmed=yes`.
 */
export function BulkConfirmPage({
  admin,
  action,
  title,
  consequence,
  button,
  count,
  names,
  selection,
  back,
  errors = {},
  draft = {},
}: {
  admin: LayoutAdmin;
  action: string;
  title: string;
  consequence: string;
  button: string;
  count: number;
  /** the first few usernames, to recognise the selection */
  names: string[];
  selection: BulkSelection;
  back: string;
  errors?: Record<string, string>;
  draft?: Record<string, string | undefined>;
}) {
  return (
    <SimplePage title={title} admin={admin}>
      <p safe>{consequence}</p>
      <p class="muted">
        <span safe>{names.join(", ")}</span>
        {count > names.length ? <span safe>{` and ${count - names.length} more`}</span> : ""}
      </p>
      <form method="post" action="/integrations/bulk" class="stack">
        <CsrfField token={admin.csrfToken} />
        <BackField back={back} />
        <input type="hidden" name="action" value={attr(action)} />
        <input type="hidden" name="confirmed" value="yes" />
        <SelectionFields selection={selection} />
        {action === "permissions" ? (
          <>
            <p class="muted">A list left empty stays as each integration has it.</p>
            <PermissionFields draft={draft} errors={errors} placeholder="unchanged" />
            <FieldError message={errors.form} />
          </>
        ) : (
          ""
        )}
        <div class="row-actions">
          <button type="submit" class={action === "delete" || action === "deactivate" ? "danger" : undefined} safe>
            {button}
          </button>
          <a href={attr(back)}>Cancel</a>
        </div>
      </form>
    </SimplePage>
  );
}
