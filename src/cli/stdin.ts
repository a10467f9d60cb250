/** readSecretLine: the first line of stdin, without its line ending (for `--password-stdin` and set-password). */
export async function readSecretLine(prompt: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(prompt);
  const text = await Bun.stdin.text();
  return text.split(/\r?\n/)[0] ?? "";
}
