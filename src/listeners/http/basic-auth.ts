/**
 * parseBasicAuth: RFC 7617 credentials from an Authorization header, or undefined for anything
 * malformed (no scheme, bad base64, no colon, not UTF-8, oversized): the caller answers 401, never 500.
 */
export function parseBasicAuth(header: string | null): { username: string; password: string } | undefined {
  if (!header || header.length > 1024) return undefined;
  const m = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})[ ]*$/i.exec(header);
  if (!m || m[1]!.length % 4 === 1) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(m[1]!, "base64"));
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}
