/** LocalTime: UTC from the server; /assets/app.js rewrites it in the browser's local time. */
export function LocalTime({ at, never = "never" }: { at: number | null | undefined; never?: string }) {
  if (at === null || at === undefined)
    return (
      <span class="muted" safe>
        {never}
      </span>
    );
  const iso = new Date(at).toISOString();
  return (
    <time datetime={iso} data-local safe>
      {`${iso.slice(0, 16).replace("T", " ")} UTC`}
    </time>
  );
}
