/** CsrfField: the hidden token every state-changing form carries (for browsers without JS). */
export function CsrfField({ token }: { token: string }) {
  return <input type="hidden" name="_csrf" value={token} />;
}
