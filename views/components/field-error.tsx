export function FieldError({ message }: { message?: string }) {
  return message ? (
    <span class="field-error" role="alert" safe>
      {message}
    </span>
  ) : (
    ""
  );
}
