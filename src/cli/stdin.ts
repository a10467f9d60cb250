import { ValidationError } from "../lib/errors.ts";

/** maxSecretLineBytes: a password line longer than this is refused (passwords have at most 256 characters). */
const maxSecretLineBytes = 4096;

/**
 * readSecretLine: the first line of stdin, without its line ending (for `--password-stdin` and
 * set-password). Reads only up to that line, at most `maxSecretLineBytes`: stdin may be anything (a
 * device, a pipe that never ends), so it is never read whole.
 */
export async function readSecretLine(prompt: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(prompt);
  const reader = Bun.stdin.stream().getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const end = value.indexOf(10);
      chunks.push(end < 0 ? value : value.subarray(0, end));
      size += end < 0 ? value.length : end;
      if (end >= 0 || size > maxSecretLineBytes) break;
    }
  } finally {
    reader.releaseLock();
  }
  if (size > maxSecretLineBytes)
    throw new ValidationError({ password: `the password line on stdin is longer than ${maxSecretLineBytes} bytes` });
  const text = new TextDecoder().decode(Buffer.concat(chunks));
  return text.replace(/\r$/, "");
}
