import { attr } from "./attr.ts";
/** Secret: a password shown exactly once, with a copy button (works without JS as selectable text). */
export function Secret({ label, value, autofocus }: { label: string; value: string; autofocus?: boolean }) {
  return (
    <div class="secret" role="status">
      <span safe>{label}</span>{" "}
      <code class="secret-value" safe>
        {value}
      </code>{" "}
      <button type="button" class="copy" data-copy={attr(value)} autofocus={autofocus}>
        Copy
      </button>
      <small class="muted">Shown once. Only a hash is stored.</small>
    </div>
  );
}
