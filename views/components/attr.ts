/**
 * attr: a text for an attribute value. @kitajs/html escapes only `"` in attributes, so `&amp;`
 * typed by a person would come back as `&` after a round trip through an edit form. Escaping all
 * of `& < > " '` here keeps the value exact (the browser decodes it once).
 */
export function attr(value: string): string {
  return Bun.escapeHTML(value);
}
