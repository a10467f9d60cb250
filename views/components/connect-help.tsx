/**
 * HelpProps: how a device of one type connects, as its part says (the same shape as lib/pages.ts
 * ConnectHelp: views take plain props and import no lib types).
 */
export interface HelpProps {
  username: string;
  urls: { label: string; url: string }[];
  examples: { label: string; text: string }[];
}

/**
 * ConnectHelp: what the username means (`hintId` lets a username field point at it), where a device
 * connects and examples ready to copy. Escaped: the examples carry names a person or device chose.
 */
export function ConnectHelp({ help, hintId }: { help: HelpProps; hintId?: string }) {
  return (
    <div class="connect-help">
      <p id={hintId} class="hint muted" safe>
        {help.username}
      </p>
      {help.urls.length ? (
        <dl class="urls">
          {help.urls.map((u) => (
            <>
              <dt safe>{u.label}</dt>
              <dd>
                <code safe>{u.url}</code>
              </dd>
            </>
          ))}
        </dl>
      ) : (
        ""
      )}
      {help.examples.map((e) => (
        <figure class="example">
          <figcaption safe>{e.label}</figcaption>
          <pre safe>{e.text}</pre>
        </figure>
      ))}
    </div>
  );
}
